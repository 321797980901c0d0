// The demo chat: one connection to the demo tenant's chat hub; `send(name, message)`
// reaches every open page as `addNewMessageToPage(name, message)`.
"use strict";

(() => {
  const MAX_SHOWN = 200;
  const status = document.getElementById("status");
  const form = document.getElementById("chat");
  const nameInput = document.getElementById("name");
  const messageInput = document.getElementById("message");
  const sendButton = document.getElementById("send");
  const list = document.getElementById("messages");

  nameInput.value = `guest-${Math.floor(Math.random() * 9000 + 1000)}`;

  function setStatus(state, text) {
    status.dataset.state = state;
    status.textContent = text;
    sendButton.disabled = state !== "connected";
  }

  function show(name, message) {
    const item = document.createElement("li");
    const who = document.createElement("strong");
    who.textContent = String(name);
    item.append(who, document.createTextNode(` ${String(message)}`));
    list.append(item);
    while (list.children.length > MAX_SHOWN) list.firstElementChild.remove();
    item.scrollIntoView({ block: "nearest" });
  }

  const connection = new signalR.HubConnectionBuilder()
    .withUrl("/hubs/demo/chat")
    .withAutomaticReconnect()
    .configureLogging(signalR.LogLevel.Warning)
    .build();
  connection.on("addNewMessageToPage", show);
  connection.onreconnecting(() => setStatus("connecting", "Reconnecting…"));
  connection.onreconnected(() => setStatus("connected", "Connected"));
  connection.onclose((e) => setStatus("error", `Disconnected${e ? `: ${e.message}` : ""}. Reload to try again.`));

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const message = messageInput.value.trim();
    if (!message) return;
    try {
      await connection.invoke("send", nameInput.value.trim() || "guest", message);
      messageInput.value = "";
      messageInput.focus();
    } catch (e) {
      setStatus("error", `Not sent: ${e.message}`);
    }
  });

  connection
    .start()
    .then(() => setStatus("connected", "Connected"))
    .catch((e) => setStatus("error", `Cannot connect: ${e.message}`));
})();

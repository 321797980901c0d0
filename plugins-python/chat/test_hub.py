"""The chat hub on the SDK's test host: ``python3 -m unittest`` in this folder (no server,
no component)."""

import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "sdk-python"))

import hub  # noqa: E402
from switchboard_hub import HubError  # noqa: E402
from switchboard_hub.testing import Caller, Streamed, TestHost, To  # noqa: E402


def said(host, caller):
    return [[m.method, *m.args] for m in host.received(caller)]


class ChatTest(unittest.TestCase):
    def test_send_reaches_every_connection_the_caller_included(self):
        host = TestHost(hub)
        ann, bob = Caller("c-ann"), Caller("c-bob")
        host.connect(ann)
        host.connect(bob)
        self.assertIsNone(host.invoke(ann, "send", "ann", "hi"))
        self.assertEqual(host.sent()[0].to, To("all"))
        for caller in (ann, bob):
            self.assertEqual(said(host, caller), [["addNewMessageToPage", "ann", "hi"]])

    def test_groups_members_get_group_messages_until_they_leave_or_disconnect(self):
        host = TestHost(hub)
        ann, bob, cy = Caller("c-ann"), Caller("c-bob"), Caller("c-cy")
        for caller in (ann, bob, cy):
            host.connect(caller)
        host.invoke(ann, "joinGroup", "room")
        host.invoke(bob, "JoinGroup", "room")
        self.assertEqual(host.group_members("room"), ["c-ann", "c-bob"])

        host.invoke(cy, "sendToGroup", "room", "cy", "hello room")
        self.assertEqual(said(host, ann), [["addNewMessageToPage", "cy", "hello room"]])
        self.assertEqual(said(host, cy), [], "the sender is not a member")

        host.invoke(ann, "leaveGroup", "room")
        host.disconnect(bob)
        host.take_sent()
        host.invoke(cy, "sendToGroup", "room", "cy", "anyone?")
        self.assertEqual(host.group_members("room"), [])
        self.assertEqual([said(host, ann), said(host, bob)], [[], []])
        self.assertEqual(
            [f"{c.change} {c.connection_id}" for c in host.group_changes()],
            ["added c-ann", "added c-bob", "removed c-ann"],
        )

    def test_send_to_user_reaches_each_of_the_users_connections(self):
        host = TestHost(hub)
        phone, laptop = Caller("c-1").user("ann"), Caller("c-2").user("ann")
        bob, anonymous = Caller("c-3").user("bob"), Caller("c-4")
        for caller in (phone, laptop, bob, anonymous):
            host.connect(caller)
        host.invoke(bob, "sendToUser", "ann", "ping")
        host.invoke(anonymous, "sendToUser", "ann", "who?")
        for caller in (phone, laptop):
            self.assertEqual(
                said(host, caller),
                [["addNewMessageToPage", "bob", "ping"], ["addNewMessageToPage", "anonymous", "who?"]],
            )
        self.assertEqual(said(host, bob), [])

    def test_echo_and_whoami_results_as_the_client_reads_them(self):
        host = TestHost(hub)
        ann = Caller("c-ann").user("ann")
        for value in ["text", 0, 1.5, True, None, [1, "two"], {"nested": {"deep": [None]}}]:
            self.assertEqual(host.invoke(ann, "echo", value), value)
        self.assertEqual(host.invoke(ann, "whoami"), {"connectionId": "c-ann", "userId": "ann"})
        self.assertEqual(host.invoke(Caller("c-x"), "WHOAMI"), {"connectionId": "c-x", "userId": None})
        with self.assertRaisesRegex(HubError, r"^Failed to invoke 'echo': invalid arguments: expected 1 argument\(s\), got 0$"):
            host.invoke(ann, "echo")
        with self.assertRaisesRegex(HubError, "^Unknown hub method 'shout'$"):
            host.invoke(ann, "shout", "x")

    def test_counter_streams_its_items_and_stops_when_the_client_cancels(self):
        host = TestHost(hub)
        ann = Caller("c-ann")
        self.assertEqual(host.stream(ann, "counter", 4), Streamed([0, 1, 2, 3]))
        self.assertEqual(host.stream(ann, "counter", 0), Streamed([]))
        cancelled = host.call(ann, "counter").args(1_000_000).cancel_after(3).stream()
        self.assertEqual(cancelled, Streamed([0, 1, 2]))

    def test_sum_adds_an_upload_stream_and_its_error_reaches_the_caller(self):
        host = TestHost(hub)
        ann = Caller("c-ann")
        self.assertEqual(host.call(ann, "sum").upload([1, 2, 3.5]).invoke(), 6.5)
        self.assertEqual(host.call(ann, "sum").upload([]).invoke(), 0)
        with self.assertRaisesRegex(HubError, "^client gave up$"):
            host.call(ann, "sum").upload_failing([1], "client gave up").invoke()


if __name__ == "__main__":
    unittest.main()

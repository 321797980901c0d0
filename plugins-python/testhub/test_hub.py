"""The test hub on the SDK's test host, natively: each method does what the end-to-end suites
expect of it before a component is built, and the SDK's dispatch (``*args``, errors with and
without detailed errors) holds outside the component too."""

import json
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "sdk-python"))

import hub  # noqa: E402
from switchboard_hub import HubError  # noqa: E402
from switchboard_hub.testing import Caller, Invoked, Streamed, TestHost  # noqa: E402

UNEXPECTED = "An unexpected error occurred invoking 'crash' on the server."


class TestHubTest(unittest.TestCase):
    def error(self, call) -> str:
        with self.assertRaises(HubError) as e:
            call()
        return str(e.exception)

    def test_results_errors_and_void(self):
        host, c = TestHost(hub), Caller("c1")
        self.assertEqual(host.invoke(c, "echoArgs", 1, "a", None, {"b": [True]}), [1, "a", None, {"b": [True]}])
        self.assertEqual(host.invoke(c, "echoArgs"), [])
        self.assertEqual(self.error(lambda: host.invoke(c, "throw", "went wrong")), "went wrong")
        self.assertIsNone(host.invoke(c, "void"))

    def test_an_unexpected_exception_is_hidden_unless_the_tenant_shows_details(self):
        quiet, c = TestHost(hub), Caller("c1")
        self.assertEqual(self.error(lambda: quiet.invoke(c, "crash", "boom")), UNEXPECTED)
        self.assertEqual(quiet.logs()[0].level, "error")
        self.assertIn("ValueError: boom", quiet.logs()[0].message)
        detailed = TestHost(hub, detailed_errors=True)
        self.assertEqual(self.error(lambda: detailed.invoke(c, "crash", "boom")), f"{UNEXPECTED} ValueError: boom")

    def test_streams_items_a_failure_after_them_a_cancellation(self):
        host, c = TestHost(hub), Caller("c1")
        self.assertEqual(host.stream(c, "counter", 3), Streamed([0, 1, 2]))
        self.assertEqual(host.call(c, "infinite").cancel_after(5).stream(), Streamed([0, 1, 2, 3, 4]))
        self.assertEqual(host.stream(c, "failingStream", 2, "broke"), Streamed([0, 1], "broke"))

    def test_upload_streams_completed_or_failed_by_the_client(self):
        host, c = TestHost(hub), Caller("c1")
        self.assertEqual(host.call(c, "concat").upload(["a", "b"]).invoke(), "ab")
        failed = self.error(lambda: host.call(c, "concat").upload_failing(["a"], "upload broke").invoke())
        self.assertEqual(failed, "upload broke")
        self.assertEqual(host.call(c, "concatTwo").args("|").upload(["a1", "a2"]).upload(["b1"]).invoke(), "a1a2|b1")
        outcome = host.call(c, "uploadOutcome").args("k").upload_failing([1], "gave up").invoke()
        self.assertEqual(outcome, {"client": "gave up", "items": [1]})
        self.assertEqual(json.loads(host.kv("k")), outcome)
        self.assertEqual(host.call(c, "uploadEcho").upload([1, "two"]).stream().items, [1, "two"])

    def test_client_results_the_value_or_the_client_error(self):
        host, c = TestHost(hub), Caller("c1")

        def answer(connection_id, method, args):
            if method == "fail":
                raise RuntimeError("client says no")
            return args[0] * 2

        host.answer_client_invocations(answer)
        self.assertEqual(host.invoke(c, "clientResult", "double", 21), 42)
        self.assertIn("client says no", self.error(lambda: host.invoke(c, "clientResult", "fail", 0)))
        self.assertEqual(host.client_invocations()[0], Invoked("c1", "double", [21]))

    def test_the_hub_context_items_groups_users_and_broadcast(self):
        host = TestHost(hub, tenant="demo", hub="testhub-py")
        c = Caller("c1").user("u").query("room", "blue").header("User-Agent", "SignalR x").transport("LongPolling")
        self.assertEqual(
            host.invoke(c, "context"),
            {
                "connectionId": "c1",
                "userId": "u",
                "tenant": "demo",
                "hub": "testhub-py",
                "claims": {"sub": "u"},
                "query": {"room": "blue"},
                "userAgent": "SignalR x",
                "authorization": None,
            },
        )
        self.assertEqual(host.invoke(c, "request", [], [])["transport"], "LongPolling")
        self.assertIsNone(host.invoke(c, "getItem", "k"))
        host.invoke(c, "setItem", "k", "v1")
        self.assertEqual(host.invoke(c, "getItem", "k"), "v1")
        self.assertEqual(host.item(c, "k"), "v1")
        for method, *args in [
            ("joinGroup", "g"),
            ("sendToGroup", "g", "x"),
            ("broadcast", "y"),
            ("sendToUser", "u", "z"),
            ("leaveGroup", "g"),
            ("sendToGroup", "g", "gone"),
        ]:
            host.invoke(c, method, *args)
        self.assertEqual([m.args[0] for m in host.received(c)], ["x", "y", "z"])

    def test_sleeping_is_virtual_and_fails_once_the_client_cancelled(self):
        host, c = TestHost(hub), Caller("c1")
        self.assertEqual(host.invoke(c, "wait", 1500), 1500)
        self.assertEqual(host.slept(), 1.5)
        self.assertEqual(host.call(c, "ticks").args(10, 100).cancel_after(2).stream().items, [0, 1])
        self.assertEqual(host.kv("ticks:c1"), "2")

    def test_send_and_kv_set_after_act_once_their_sleep_ends_cancelled_or_not(self):
        host, c = TestHost(hub), Caller("c1")
        host.invoke(c, "joinGroup", "g")
        host.invoke(c, "sendToGroupAfter", 700, "g", "on time")
        self.assertEqual(host.slept(), 0.7)
        host.call(c, "sendToGroupAfter").args(700, "g", "late").cancel_after(0).invoke()
        self.assertEqual([m.args[0] for m in host.received(c)], ["on time", "late"])
        host.call(c, "kvSetAfter").args(700, "k", "late").cancel_after(0).invoke()
        self.assertEqual(host.kv("k"), "late")


if __name__ == "__main__":
    unittest.main()

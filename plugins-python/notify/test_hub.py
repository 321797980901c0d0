"""The notify hub on the SDK's test host: ``python3 -m unittest`` in this folder (no server,
no component)."""

import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "sdk-python"))

import hub  # noqa: E402
from switchboard_hub import HubError  # noqa: E402
from switchboard_hub.testing import Caller, Sent, TestHost, To  # noqa: E402

DAY_MS = 24 * 60 * 60 * 1000
NOT_FOUND = "Unable to find connection"


class NotifyTest(unittest.TestCase):
    def test_a_registered_client_and_only_it_is_notified(self):
        host = TestHost(hub)
        phone, other, backend = Caller("c-phone"), Caller("c-other"), Caller("c-backend")
        for caller in (phone, other, backend):
            host.connect(caller)

        self.assertIsNone(host.invoke(phone, "registerClient", 42))
        self.assertEqual(host.kv("notify:client:42"), "c-phone")
        self.assertEqual(host.kv_ttl("notify:client:42"), DAY_MS)

        # A MessagePack client's 42.0 names the same registration.
        host.invoke(backend, "NotifyClient", 42.0, "confirmed")
        self.assertEqual(
            host.sent(),
            [Sent(To("connections", ids=["c-phone"]), "addMessage", ["Here's the message for confirmation"])],
        )
        host.invoke(backend, "notifyClient", 42, 1)
        self.assertEqual(
            [m.args[0] for m in host.received(phone)],
            ["Here's the message for confirmation", "Here's the message for failure"],
        )
        self.assertEqual(host.received(other) + host.received(backend), [])

    def test_registering_again_moves_the_identifier(self):
        host = TestHost(hub)
        old, new = Caller("c-old"), Caller("c-new")
        host.invoke(old, "registerClient", 7)
        host.invoke(new, "registerClient", 7)
        host.invoke(old, "notifyClient", 7, "Failed")
        self.assertEqual(len(host.received(new)), 1)
        self.assertEqual(host.received(old), [])

    def test_unknown_or_expired_identifiers_are_not_found(self):
        host = TestHost(hub)
        caller = Caller("c-1")
        with self.assertRaisesRegex(HubError, f"^{NOT_FOUND}$"):
            host.invoke(caller, "notifyClient", 1, "Confirmed")
        host.invoke(caller, "registerClient", 1)
        host.expire("notify:client:1")
        with self.assertRaisesRegex(HubError, f"^{NOT_FOUND}$"):
            host.invoke(caller, "notifyClient", 1, "Confirmed")
        self.assertEqual(host.sent(), [])

    def test_bad_arguments_are_refused_with_a_message_the_client_can_read(self):
        host = TestHost(hub)
        caller = Caller("c-1")
        with self.assertRaises(HubError) as e:
            host.invoke(caller, "registerClient", 1.5)
        self.assertEqual(str(e.exception), "specificIdentifier must be an integer, got 1.5")
        host.invoke(caller, "registerClient", 1)
        with self.assertRaises(HubError) as e:
            host.invoke(caller, "notifyClient", 1, "Pending")
        self.assertEqual(str(e.exception), 'Unknown status "Pending": expected "Confirmed" (0) or "Failed" (1)')
        with self.assertRaises(HubError) as e:
            host.invoke(caller, "notifyClient", 1)
        self.assertEqual(
            str(e.exception), "Failed to invoke 'notifyClient': invalid arguments: expected 2 argument(s), got 1"
        )
        self.assertEqual(host.sent(), [])

    def test_store_failures_reach_the_caller(self):
        host = TestHost(hub)
        host.fail("kv.set", "bucket unavailable")
        with self.assertRaisesRegex(HubError, "^bucket unavailable$"):
            host.invoke(Caller("c-1"), "registerClient", 1)
        self.assertEqual(host.kv_entries(), [])


if __name__ == "__main__":
    unittest.main()

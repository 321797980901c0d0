"""The {{hub}} hub's unit tests: ``python3 -m unittest`` in this folder runs its methods on
the SDK's test host (no server, no build)."""

import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "{{sdk_dir}}" / "sdk-python"))

import hub  # noqa: E402
from switchboard_hub.testing import Caller, Message, TestHost  # noqa: E402


class HubTest(unittest.TestCase):
    def test_hello_greets_by_name_and_broadcast_reaches_every_connection(self):
        host = TestHost(hub)
        ada, bob = Caller("conn-1").user("ada"), Caller("conn-2")
        host.connect(ada)
        host.connect(bob)

        self.assertEqual(host.invoke(ada, "hello", "Ada"), "Hello, Ada!")
        host.invoke(ada, "broadcast", "hi all")
        self.assertEqual(host.received(bob), [Message("onMessage", ["ada", "hi all"])])


if __name__ == "__main__":
    unittest.main()

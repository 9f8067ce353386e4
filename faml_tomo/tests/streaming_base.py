"""What the streaming protocol tests share: the sizes and stream states of a
run's outputs as it stored them, waiting for a condition on them while the run
goes on in the background, stopping a run left active."""

import time

from faml_tomo.tests.protocol_base import FamlTomoProtocolTest

TIMEOUT = 60.0  # seconds, for each thing the test waits for


class StreamingProtocolTest(FamlTomoProtocolTest):
    """A protocol test whose run streams; ``OUTPUTS`` names its output sets."""

    OUTPUTS: tuple = ()

    def _outputs(self, prot):
        """{output: (size, stream state)} as the run stored them."""
        self.proj._updateProtocol(prot)
        out = {}
        for name in self.OUTPUTS:
            obj = getattr(prot, name, None)
            if obj is not None:
                out[name] = (obj.getSize(), obj.getStreamState())
        return out

    def _waitFor(self, prot, condition, what):
        start = time.time()
        while time.time() - start < TIMEOUT:
            out = self._outputs(prot)
            if condition(out):
                return out
            self.assertFalse(prot.isFailed(), f"the run failed waiting for {what}")
            time.sleep(0.5)
        self.fail(f"timed out waiting for {what}: {self._outputs(prot)}, status {prot.getStatus()}")

    def _stopIfActive(self, prot):
        self.proj._updateProtocol(prot)
        if prot.isActive():
            self.proj.stopProtocol(prot)

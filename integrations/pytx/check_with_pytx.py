"""Runs HashfedSignalExchangeAPI through python-threatexchange's own merge and conversion.

    python3 check_with_pytx.py NODE_URL TOKEN MD5_TO_DISPUTE

Needs threatexchange 1.2.16 importable (pip, or PYTHONPATH pointing at its source); the Go test
TestWithPytx runs it when it is and skips otherwise. Prints "TYPE SIGNAL" for every signal pytx
would index, sorted, then the opinion written back.
"""

import sys

from threatexchange.exchanges import fetch_state as state
from threatexchange.signal_type.md5 import VideoMD5Signal
from threatexchange.signal_type.pdq.signal import PdqSignal
from threatexchange.signal_type.sha256 import VideoSHA256Signal
from threatexchange.signal_type.url import URLSignal

from hashfed_pytx.exchange import (
    HashfedCheckpoint,
    HashfedCollabConfig,
    HashfedCredentials,
    HashfedSignalExchangeAPI,
)


def main():
    url, token, md5 = sys.argv[1:4]
    assert HashfedSignalExchangeAPI.get_name() == "hashfed"
    assert HashfedSignalExchangeAPI.get_checkpoint_cls() is HashfedCheckpoint
    collab = HashfedCollabConfig(name="hashfed test", node_url=url, page_size=5)
    assert collab.api == "" and collab.enabled
    api = HashfedSignalExchangeAPI.for_collab(collab, HashfedCredentials(token))
    types = [PdqSignal, VideoMD5Signal, VideoSHA256Signal, URLSignal]
    stored = {}
    checkpoint = None
    # Two passes: the second resumes from the first's checkpoint and must add nothing.
    for _ in range(2):
        for delta in api.fetch_iter(types, checkpoint):
            api.naive_fetch_merge(stored, delta.updates)
            checkpoint = delta.checkpoint
    out = []
    for st, signals in api.naive_convert_to_signal_type(types, collab, stored).items():
        for s, meta in signals.items():
            agg = meta.get_as_aggregate_opinion()
            assert agg.category == state.AggregateSignalOpinionCategory.POSITIVE_CLASS, agg
            out.append("%s %s" % (st.get_name(), s))
    for line in sorted(out):
        print(line)
    api.report_opinion(
        VideoMD5Signal,
        md5,
        state.SignalOpinion(True, state.SignalOpinionCategory.NEGATIVE_CLASS, {"not-ours"}),
    )
    print("opinion written")


if __name__ == "__main__":
    main()

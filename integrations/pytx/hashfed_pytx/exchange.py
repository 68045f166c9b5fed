"""A python-threatexchange 1.2.16 SignalExchangeAPI for a hashfed node.

Install this package beside threatexchange==1.2.16 and add HashfedSignalExchangeAPI to the
exchanges of pytx's CLI or of HMA (see README.md). Each collaboration reads one node's feed; the
checkpoint is the feed cursor, so a fetch resumes where the last one stopped, and a signal no
member lists any more comes back as a deletion.
"""

import typing as t
from dataclasses import dataclass, field

from threatexchange.exchanges import auth
from threatexchange.exchanges import fetch_state as state
from threatexchange.exchanges.collab_config import CollaborationConfigWithDefaults
from threatexchange.exchanges.signal_exchange_api import SignalExchangeAPIWithSimpleUpdates
from threatexchange.signal_type.signal_base import SignalType

from hashfed_pytx import node


@dataclass
class HashfedCheckpoint(state.FetchCheckpointBase):
    """Where the fetch stopped: the node's feed cursor ("" is the beginning)."""

    cursor: str

    def get_progress_timestamp(self) -> t.Optional[int]:
        return None


@dataclass
class HashfedSignalMetadata(state.FetchedSignalMetadata):
    """The members listing a signal and the labels of each listing."""

    members: t.List[str]
    labels: t.Dict[str, t.List[str]]

    def get_as_opinions(self) -> t.Sequence[state.SignalOpinion]:
        return [
            state.SignalOpinion(
                False, state.SignalOpinionCategory.POSITIVE_CLASS, set(self.labels.get(m, []))
            )
            for m in self.members
        ]

    def as_dict(self) -> t.Dict[str, t.Any]:
        return {"members": self.members, "labels": self.labels}


@dataclass
class _HashfedCollabConfigRequiredFields:
    node_url: str = field(
        metadata={"help": "the node's HTTP address (http.listen), e.g. http://127.0.0.1:7402"}
    )


@dataclass
class HashfedCollabConfig(
    CollaborationConfigWithDefaults, _HashfedCollabConfigRequiredFields
):
    page_size: int = field(
        default=1000, metadata={"help": "feed records per request (at most 10000)"}
    )


@dataclass
class HashfedCredentials(auth.CredentialHelper):
    """The node's member token (leave unset for a node without one)."""

    ENV_VARIABLE: t.ClassVar[str] = "PYTX_HASHFED_TOKEN"
    FILE_NAME: t.ClassVar[str] = "~/.pytx_hashfed_token"

    token: str = field(metadata={"help": "the node's member token"})

    @classmethod
    def _from_str(cls, s: str) -> "HashfedCredentials":
        return cls(s.strip())

    def _are_valid(self) -> bool:
        return bool(self.token)


class HashfedSignalExchangeAPI(
    auth.SignalExchangeWithAuth[HashfedCollabConfig, HashfedCredentials],
    SignalExchangeAPIWithSimpleUpdates[
        HashfedCollabConfig, HashfedCheckpoint, HashfedSignalMetadata
    ],
):
    """Reads a hashfed node's shared set; writes opinions back as signed log entries."""

    def __init__(self, collab: HashfedCollabConfig, token: str = "") -> None:
        super().__init__()
        self.collab = collab
        self.client = node.NodeClient(collab.node_url, token=token, page_size=collab.page_size)

    @classmethod
    def get_name(cls) -> str:
        return "hashfed"

    @staticmethod
    def get_config_cls() -> t.Type[HashfedCollabConfig]:
        return HashfedCollabConfig

    @staticmethod
    def get_checkpoint_cls() -> t.Type[HashfedCheckpoint]:
        return HashfedCheckpoint

    @staticmethod
    def get_record_cls() -> t.Type[HashfedSignalMetadata]:
        return HashfedSignalMetadata

    @staticmethod
    def get_credential_cls() -> t.Type[HashfedCredentials]:
        return HashfedCredentials

    @classmethod
    def for_collab(
        cls,
        collab: HashfedCollabConfig,
        credentials: t.Optional[HashfedCredentials] = None,
    ) -> "HashfedSignalExchangeAPI":
        if credentials is None:
            try:
                credentials = HashfedCredentials.get(cls)
            except auth.SignalExchangeAPIMissingAuthException:
                credentials = None  # a node without a token
        return cls(collab, credentials.token if credentials else "")

    @classmethod
    def fetch_value_merge(
        cls,
        old: t.Optional[HashfedSignalMetadata],
        new: t.Optional[HashfedSignalMetadata],
    ) -> t.Optional[HashfedSignalMetadata]:
        merged = node.merge(old.as_dict() if old else None, new.as_dict() if new else None)
        return None if merged is None else HashfedSignalMetadata(**merged)

    def fetch_iter(
        self,
        _supported_signal_types: t.Sequence[t.Type[SignalType]],
        checkpoint: t.Optional[HashfedCheckpoint],
    ) -> t.Iterator[
        state.FetchDelta[
            t.Tuple[str, str], HashfedSignalMetadata, HashfedCheckpoint
        ]
    ]:
        cursor = checkpoint.cursor if checkpoint is not None else ""
        for updates, nxt in self.client.fetch_updates(cursor):
            yield state.FetchDelta(
                {
                    k: None if v is None else HashfedSignalMetadata(**v)
                    for k, v in updates.items()
                },
                HashfedCheckpoint(nxt),
            )

    def report_opinion(
        self,
        s_type: t.Type[SignalType],
        signal: str,
        opinion: state.SignalOpinion,
    ) -> None:
        stances = {
            state.SignalOpinionCategory.POSITIVE_CLASS: "agree",
            state.SignalOpinionCategory.NEGATIVE_CLASS: "false_positive",
        }
        stance = stances.get(opinion.category)
        if stance is None:
            raise NotImplementedError(
                "hashfed has no opinion for %s" % opinion.category.name
            )
        text = " ".join(sorted(opinion.tags)) if opinion.tags else ""
        self.client.report_opinion(s_type.get_name(), signal, stance, text)

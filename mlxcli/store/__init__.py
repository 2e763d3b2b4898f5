"""The conversation store: every stored turn from every front end, hot in SQLite, archived as JSON.

Front ends build a ``Turn`` (the messages it added, the answer, usage, model,
source) and call ``ConversationStore.record``; turns chain by ``previous_id``
into conversations. See ``store.py`` for the crash-safety rules and
``records.py`` for the stable JSON format.
"""

from mlxcli.store.records import Conversation, ConversationSummary, StoredMessage, Turn
from mlxcli.store.settings import StoreSettings
from mlxcli.store.database import StoreFailure
from mlxcli.store.store import ConversationStore

__all__ = [
    "Conversation",
    "ConversationStore",
    "ConversationSummary",
    "StoreFailure",
    "StoreSettings",
    "StoredMessage",
    "Turn",
]

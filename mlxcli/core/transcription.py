"""The neutral speech-to-text request and its answer, between the front ends (server, CLI) and the engine.

The audio reaches the engine decoded (``mlxcli/audio.py``): mono float32 samples at ``SAMPLE_RATE``.
A request answers with one ``Transcription``; while it runs, its handle hands out each ``Segment`` as
soon as it is final (the server streams them as text deltas).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterator, Literal, Protocol, runtime_checkable

from mlxcli.core.request import new_id

if TYPE_CHECKING:
    import numpy as np

SAMPLE_RATE = 16000  # what every speech model here reads (Whisper's rate)
Task = Literal["transcribe", "translate"]
# ISO-639-1 (and a few 3-letter) codes in the order of Whisper's language tokens, with their names.
LANGUAGES = {code: name.replace("_", " ") for code, name in (item.split(":") for item in (
    "en:english zh:chinese de:german es:spanish ru:russian ko:korean fr:french ja:japanese pt:portuguese "
    "tr:turkish pl:polish ca:catalan nl:dutch ar:arabic sv:swedish it:italian id:indonesian hi:hindi "
    "fi:finnish vi:vietnamese he:hebrew uk:ukrainian el:greek ms:malay cs:czech ro:romanian da:danish "
    "hu:hungarian ta:tamil no:norwegian th:thai ur:urdu hr:croatian bg:bulgarian lt:lithuanian la:latin "
    "mi:maori ml:malayalam cy:welsh sk:slovak te:telugu fa:persian lv:latvian bn:bengali sr:serbian "
    "az:azerbaijani sl:slovenian kn:kannada et:estonian mk:macedonian br:breton eu:basque is:icelandic "
    "hy:armenian ne:nepali mn:mongolian bs:bosnian kk:kazakh sq:albanian sw:swahili gl:galician mr:marathi "
    "pa:punjabi si:sinhala km:khmer sn:shona yo:yoruba so:somali af:afrikaans oc:occitan ka:georgian "
    "be:belarusian tg:tajik sd:sindhi gu:gujarati am:amharic yi:yiddish lo:lao uz:uzbek fo:faroese "
    "ht:haitian_creole ps:pashto tk:turkmen nn:nynorsk mt:maltese sa:sanskrit lb:luxembourgish my:myanmar "
    "bo:tibetan tl:tagalog mg:malagasy as:assamese tt:tatar haw:hawaiian ln:lingala ha:hausa ba:bashkir "
    "jw:javanese su:sundanese yue:cantonese"
).split())}


@dataclass
class TranscriptionRequest:
    audio: "np.ndarray"  # mono float32 samples in [-1, 1] at SAMPLE_RATE
    model: str | None = None
    task: Task = "transcribe"  # translate: the text in English, whatever the language spoken
    language: str | None = None  # ISO-639-1 code of the language spoken; None: detected
    prompt: str | None = None  # text before the audio: spellings, style, the previous part of a recording
    temperature: float = 0.0  # 0: greedy, raised on each retry of a window whose text looks wrong
    words: bool = False  # word timestamps
    logprobs: bool = False  # each text token's log probability (Segment.logprobs)
    keep_alive: float | None = None  # as ChatRequest.keep_alive: how long the model stays loaded once idle
    request_id: str = field(default_factory=lambda: new_id("req_"))

    @property
    def duration(self) -> float:
        return len(self.audio) / SAMPLE_RATE


@dataclass(frozen=True)
class Word:
    word: str  # with its leading space, as the model wrote it
    start: float  # seconds from the start of the audio
    end: float
    probability: float


@dataclass(frozen=True)
class TokenLogprob:
    token: str
    bytes: tuple[int, ...]  # the token's own bytes (a token may hold part of a character)
    logprob: float


@dataclass(frozen=True)
class Segment:
    id: int
    seek: int  # the window it was read in, as the offset of that window in 10-ms frames
    start: float  # seconds
    end: float
    text: str
    tokens: tuple[int, ...]
    temperature: float  # the one its window was finally decoded at
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float
    words: tuple[Word, ...] = ()
    logprobs: tuple[TokenLogprob, ...] = ()  # its text tokens', when asked for


@dataclass(frozen=True)
class Transcription:
    text: str
    language: str  # ISO-639-1 code: the one given, or detected
    duration: float  # seconds of audio read
    segments: tuple[Segment, ...]
    seconds: float = 0.0  # wall time the engine spent on it, from its first unit of work to its last

    @property
    def words(self) -> list[Word]:
        return [w for s in self.segments for w in s.words]


@runtime_checkable
class TranscriptionJob(Protocol):
    """One submitted transcription (``Engine.work("transcription", request)``)."""

    model: str  # the served name of the model answering it

    def result(self, timeout: float | None = None) -> Transcription | None:
        """The answer, or None if it is not ready within ``timeout`` seconds; raises the request's
        ``MlxcliError`` if it failed."""
        ...

    def segments(self, timeout: float) -> Iterator[Segment | None]:
        """Each segment once final, in order, and None after each ``timeout`` seconds without one;
        ends when the transcription is complete (then ``result()`` is ready) or raises its error."""
        ...

    def cancel(self) -> None: ...

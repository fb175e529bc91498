"""The call flow's TwiML, built with the twilio package. Japanese first, English on request.

Every builder is pure: (where to post back, language, state) → XML text.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from twilio.twiml.voice_response import Gather, Start, VoiceResponse

LANGUAGES = {"ja": "ja-JP", "en": "en-US"}
ENGLISH_KEY = "9"
PROMPTS: dict[str, dict[str, str]] = {
    "ja": {
        "ask_code": "お電話ありがとうございます。チャットまたはLINEに表示された6桁のコードを、"
                    "ボタンで入力するか、お話しください。コードがない場合は、そのままお待ちください。",
        "wrong_code": "コードを確認できませんでした。もう一度お願いします。",
        "linked": "ありがとうございます。チャットの内容を引き継ぎました。",
        "consent": "この通話は、サービス向上のため録音させていただきます。",
        "menu": "オペレーターとお話しになる場合は1を、チャットのリンクをショートメッセージで"
                "受け取る場合は2を押してください。",
        "queue": "オペレーターにおつなぎします。しばらくお待ちください。",
        "sms_sent": "チャットのリンクをショートメッセージでお送りしました。"
                    "お電話ありがとうございました。",
        "sms_failed": "ショートメッセージを送れませんでした。オペレーターにおつなぎします。",
        "closed": "ただいま営業時間外です。発信音のあとにご用件をお話しください。",
        "voicemail_done": "メッセージを承りました。お電話ありがとうございました。",
    },
    "en": {
        "ask_code": "Thank you for calling. Please enter or say the six-digit code shown in "
                    "your chat or LINE. If you have no code, please hold.",
        "wrong_code": "We could not find that code. Please try again.",
        "english_offer": "For English, press 9, then the pound key.",
        "linked": "Thank you. We have your conversation.",
        "consent": "This call will be recorded to improve our service.",
        "menu": "To talk to an agent, press 1. To get a chat link by text message, press 2.",
        "queue": "We are connecting you to an agent. Please hold.",
        "sms_sent": "We have sent you a chat link by text message. Thank you for calling.",
        "sms_failed": "We could not send a text message. Connecting you to an agent.",
        "closed": "We are closed now. Please leave a message after the tone.",
        "voicemail_done": "We have your message. Thank you for calling.",
    },
}


@dataclass(frozen=True)
class Urls:
    """Absolute callback URLs, built from ``OMOHUB_PUBLIC_URL`` (what Twilio signs)."""

    base: str

    def of(self, name: str, **query: str | int) -> str:
        url = f"{self.base.rstrip('/')}/webhooks/twilio/{name}"
        return f"{url}?{urlencode(query)}" if query else url


@dataclass(frozen=True)
class Voice:
    """How the hub speaks: a language and optionally a named voice (e.g. Polly.Mizuki)."""

    lang: str = "ja"
    name: str = ""

    def say(self, parent: VoiceResponse | Gather, key: str) -> None:
        lang = self.lang if self.lang in PROMPTS else "ja"
        parent.say(PROMPTS[lang][key], language=LANGUAGES[lang], voice=self.name or None)

    def switched(self, lang: str) -> Voice:
        return Voice(lang if lang in PROMPTS else self.lang, self.name if lang == self.lang else "")


def ask_code(urls: Urls, voice: Voice, attempt: int, retry: bool = False) -> str:
    """Ask for the six-digit chat code by keypad or speech; no input counts as a try."""
    response = VoiceResponse()
    if retry:
        voice.say(response, "wrong_code")
    action = urls.of("gather", attempt=attempt, lang=voice.lang)
    gather = response.gather(input="dtmf speech", language=LANGUAGES[voice.lang],
                             action=action, method="POST", num_digits=6, timeout=8,
                             finish_on_key="#", speech_timeout="auto", hints="0 1 2 3 4 5 6 7 8 9")
    voice.say(gather, "ask_code")
    if voice.lang != "en":
        gather.say(PROMPTS["en"]["english_offer"], language=LANGUAGES["en"])
    response.redirect(action, method="POST")
    return str(response)


def connected(urls: Urls, voice: Voice, linked: bool, open_now: bool,
              transcribe_voicemail: bool = True) -> str:
    """After the caller is known: consent, recording and live transcription, then the menu
    (or voicemail outside business hours, transcribed live by Twilio unless the hub has a
    speech-to-text engine of its own for recordings)."""
    response = VoiceResponse()
    if linked:
        voice.say(response, "linked")
    if not open_now:
        return voicemail(urls, voice, response, transcribe_voicemail)
    voice.say(response, "consent")
    start = Start()
    start.recording(recording_status_callback=urls.of("recording"),
                    recording_status_callback_event="in-progress completed absent",
                    track="both", channels="dual")
    start.transcription(status_callback_url=urls.of("transcription"),
                        language_code=LANGUAGES[voice.lang], track="both_tracks",
                        partial_results=False, inbound_track_label="customer",
                        outbound_track_label="agent")
    response.append(start)
    action = urls.of("menu", lang=voice.lang)
    gather = response.gather(input="dtmf", num_digits=1, timeout=6, action=action,
                             method="POST")
    voice.say(gather, "menu")
    response.redirect(urls.of("menu", lang=voice.lang, choice="1"), method="POST")
    return str(response)


def voicemail(urls: Urls, voice: Voice, response: VoiceResponse | None = None,
              transcribe: bool = True) -> str:
    response = response or VoiceResponse()
    voice.say(response, "closed")
    if transcribe:  # the caller's message, in their language, through real-time transcription
        start = Start()
        start.transcription(status_callback_url=urls.of("transcription"),
                            language_code=LANGUAGES[voice.lang], track="inbound_track",
                            partial_results=False, inbound_track_label="customer")
        response.append(start)
    response.record(action=urls.of("menu", lang=voice.lang, choice="voicemail"),
                    method="POST", max_length=180, play_beep=True, finish_on_key="#",
                    recording_status_callback=urls.of("recording"),
                    recording_status_callback_event="completed absent")
    return str(response)


def to_agent(voice: Voice, queue: str, agent_client: str | None = None,
             notice: str = "queue") -> str:
    """To the assigned agent's browser softphone if there is one, else into the queue."""
    response = VoiceResponse()
    voice.say(response, notice)
    if agent_client:
        dial = response.dial(timeout=20, answer_on_bridge=True)
        dial.client(agent_client)
    response.enqueue(queue)
    return str(response)


def goodbye(voice: Voice, key: str) -> str:
    response = VoiceResponse()
    voice.say(response, key)
    response.hangup()
    return str(response)


def outbound_bridge(voice: Voice, agent_client: str | None, urls: Urls) -> str:
    """An agent's click-to-call, answered by the customer: consent, recording, then the agent."""
    response = VoiceResponse()
    voice.say(response, "consent")
    start = Start()
    start.recording(recording_status_callback=urls.of("recording"),
                    recording_status_callback_event="completed absent", track="both")
    start.transcription(status_callback_url=urls.of("transcription"),
                        language_code=LANGUAGES[voice.lang], track="both_tracks")
    response.append(start)
    if agent_client:
        response.dial(answer_on_bridge=True).client(agent_client)
    return str(response)


def answer_queue(queue: str) -> str:
    """The agent's softphone takes the caller who waited longest in the queue."""
    response = VoiceResponse()
    response.dial().queue(queue)
    return str(response)


def dial_customer(urls: Urls, voice: Voice, number: str, caller_id: str,
                  parent_sid: str) -> str:
    """The agent's softphone calls a customer: consent, recording, then the number; the
    customer leg's reports are filed under the agent's leg (``call=`` in the URL)."""
    response = VoiceResponse()
    dial = response.dial(caller_id=caller_id, answer_on_bridge=True,
                         record="record-from-answer-dual",
                         recording_status_callback=urls.of("recording"),
                         recording_status_callback_event="completed absent")
    dial.number(number, status_callback=urls.of("status", call=parent_sid),
                status_callback_event="initiated ringing answered completed",
                url=urls.of("consent", lang=voice.lang))
    return str(response)


def consent(voice: Voice) -> str:
    """Played to the customer when they answer, before they are bridged."""
    response = VoiceResponse()
    voice.say(response, "consent")
    return str(response)


def agent_client_name(agent_id: int) -> str:
    """The Twilio Client identity of an agent's browser softphone."""
    return f"agent-{agent_id}"


def agent_of_client(identity: str) -> int | None:
    """``client:agent-7`` (Twilio's From for a softphone) → 7."""
    name = identity.removeprefix("client:")
    prefix = agent_client_name(0)[:-1]
    suffix = name.removeprefix(prefix)
    return int(suffix) if name.startswith(prefix) and suffix.isdigit() else None

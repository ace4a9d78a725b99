"""The text of a reminder notice in the coordinator's language, and its SMTP send.

Notice texts are short and few, so they live here as one small table per language (en, es,
zh_Hans, vi, fil), with dates and "in N days" formatted by Babel for that language. Sending reuses
the delivery mailer (``services.delivery.mailer``): the same ``[smtp]`` settings, message builder, relay
connection and backoff. Each message carries the Message-ID the ledger recorded before the send,
so a resend after a crash is the *same* message to mail clients.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import date, timedelta
from email.message import EmailMessage
from email.utils import make_msgid

from babel.dates import format_date, format_timedelta

from services.core.errors import ConsoleError
from services.core.validation import LANGUAGES
from services.delivery import mailer
from services.delivery.mailer import MailConfig
from services.reminders.ledger import Notice, NoticeKind


class NoticeSendError(ConsoleError):
    """The SMTP relay could not be reached or did not accept the notice; the ledger retries it."""


class RelayUnavailable(NoticeSendError):
    """The relay itself is unreachable: no point trying the scan's other notices now."""


# {when}: "in 3 days" or "3 days ago" (Babel); {date}: the expiry day or deadline; {lea}; {count}; {program};
# {received}: the day the SSRs were received.
TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "cred_before": "SIS-vendor credential for {lea} expires {when} ({date})",
        "cred_today": "SIS-vendor credential for {lea} expires today ({date})",
        "cred_after": "SIS-vendor credential for {lea} EXPIRED {when} ({date})",
        "cred_body": "Generate a new credential in SSR Console (talk to the other program's LEA "
        "coordinator first: one reset cuts the vendor off for CAASPP and ELPAC), then enter it "
        "in every vendor system that uses it. Until then families may lose portal access to "
        "their score reports.",
        "ssr_subject": "{count} {program} score reports for {lea} not yet delivered: due {date}",
        "ssr_body": "{count} {program} Student Score Reports received on {received} have not "
        "been delivered to families. They are due by {date}. Open SSR Console to deliver them.",
        "late": "(This reminder is late: the scheduler was not running when it fell due.)",
    },
    "es": {
        "cred_before": "La credencial del proveedor SIS de {lea} vence {when} ({date})",
        "cred_today": "La credencial del proveedor SIS de {lea} vence hoy ({date})",
        "cred_after": "La credencial del proveedor SIS de {lea} VENCIÓ {when} ({date})",
        "cred_body": "Genere una nueva credencial en SSR Console (hable antes con el coordinador "
        "del otro programa: un restablecimiento desconecta al proveedor para CAASPP y ELPAC) e "
        "ingrésela en cada sistema del proveedor. Mientras tanto, las familias pueden perder el "
        "acceso a sus informes en el portal.",
        "ssr_subject": "{count} informes {program} de {lea} sin entregar: plazo {date}",
        "ssr_body": "{count} informes de calificaciones {program} recibidos el {received} no se "
        "han entregado a las familias. El plazo vence el {date}. Abra SSR Console para "
        "entregarlos.",
        "late": "(Este aviso llega tarde: el programador no estaba en marcha cuando correspondía.)",
    },
    "zh_Hans": {
        "cred_before": "{lea} 的 SIS 供应商凭据将于{when}过期（{date}）",
        "cred_today": "{lea} 的 SIS 供应商凭据今天过期（{date}）",
        "cred_after": "{lea} 的 SIS 供应商凭据已于{when}过期（{date}）",
        "cred_body": "请在 SSR Console 中生成新凭据（请先与另一项目的 LEA 协调员沟通：一次重置会同时"
        "切断 CAASPP 和 ELPAC 的供应商连接），然后在使用它的每个供应商系统中输入。在此之前，"
        "家庭可能无法在门户中查看成绩报告。",
        "ssr_subject": "{lea} 有 {count} 份 {program} 成绩报告尚未送达：截止 {date}",
        "ssr_body": "{received} 收到的 {count} 份 {program} 学生成绩报告尚未送达家庭，截止日期为 "
        "{date}。请打开 SSR Console 发送。",
        "late": "（此提醒已延迟：到期时调度程序未运行。）",
    },
    "vi": {
        "cred_before": "Thông tin xác thực nhà cung cấp SIS của {lea} hết hạn {when} ({date})",
        "cred_today": "Thông tin xác thực nhà cung cấp SIS của {lea} hết hạn hôm nay ({date})",
        "cred_after": "Thông tin xác thực nhà cung cấp SIS của {lea} ĐÃ HẾT HẠN {when} ({date})",
        "cred_body": "Hãy tạo thông tin xác thực mới trong SSR Console (trao đổi trước với điều "
        "phối viên LEA của chương trình kia: một lần đặt lại sẽ ngắt nhà cung cấp cho cả CAASPP "
        "và ELPAC), rồi nhập vào mọi hệ thống của nhà cung cấp. Trước đó, các gia đình có thể "
        "mất quyền xem báo cáo điểm trên cổng thông tin.",
        "ssr_subject": "{count} báo cáo {program} của {lea} chưa được gửi: hạn {date}",
        "ssr_body": "{count} Báo cáo Điểm Học sinh {program} nhận ngày {received} chưa được gửi "
        "đến các gia đình. Hạn chót là {date}. Mở SSR Console để gửi.",
        "late": "(Lời nhắc này bị trễ: bộ lập lịch không chạy khi đến hạn.)",
    },
    "fil": {
        "cred_before": "Mag-e-expire {when} ang SIS-vendor credential ng {lea} ({date})",
        "cred_today": "Mag-e-expire ngayon ang SIS-vendor credential ng {lea} ({date})",
        "cred_after": "NAG-EXPIRE {when} ang SIS-vendor credential ng {lea} ({date})",
        "cred_body": "Gumawa ng bagong credential sa SSR Console (kausapin muna ang LEA "
        "coordinator ng kabilang programa: ang isang reset ay pumuputol sa vendor para sa CAASPP "
        "at ELPAC), at ilagay ito sa bawat vendor system na gumagamit nito. Hanggang noon, "
        "maaaring mawalan ng access ang mga pamilya sa kanilang score report sa portal.",
        "ssr_subject": "{count} {program} score report ng {lea} ang hindi pa naihahatid: "
        "hanggang {date}",
        "ssr_body": "{count} {program} Student Score Report na natanggap noong {received} ang "
        "hindi pa naihahatid sa mga pamilya. Ang takdang petsa ay {date}. Buksan ang SSR Console "
        "para ihatid ang mga ito.",
        "late": "(Huli ang paalalang ito: hindi tumatakbo ang scheduler nang ito ay dapat ipadala.)",
    },
}
assert set(TEXTS) == set(LANGUAGES), "one notice text table per console language"


@dataclass(frozen=True)
class NoticeText:
    subject: str
    body: str


def render(notice: Notice, lea_name: str) -> NoticeText:
    """The notice's subject and body in its recipient's language."""
    language = notice.language if notice.language in TEXTS else "en"
    texts = TEXTS[language]
    day = format_date(notice.event_on, format="full", locale=language)
    if notice.kind is NoticeKind.CREDENTIAL_EXPIRY:
        key = (
            "cred_before"
            if notice.offset > 0
            else "cred_today"
            if notice.offset == 0
            else "cred_after"
        )
        when = format_timedelta(
            timedelta(days=notice.offset or 1),  # negative after expiry: "3 days ago"
            granularity="day",
            threshold=1000,
            add_direction=True,
            locale=language,
        )
        subject = texts[key].format(lea=lea_name, when=when, date=day)
        body = texts["cred_body"]
    else:
        values = {
            "lea": lea_name,
            "count": notice.pending,
            "program": notice.program,
            "date": day,
            "received": format_date(_received_on(notice), format="long", locale=language),
        }
        subject = texts["ssr_subject"].format(**values)
        body = texts["ssr_body"].format(**values)
    if notice.late:
        body = f"{body}\n\n{texts['late']}"
    return NoticeText(subject, f"{subject}\n\n{body}\n")


def _received_on(notice: Notice) -> date:
    # subject is ssr:<lea>:<program>:<received ISO date>
    return date.fromisoformat(notice.subject.rsplit(":", 1)[1])


class NoticeMailer:
    """Sends one notice per call through the relay; anything but acceptance is ``NoticeSendError``."""

    def __init__(self, config: MailConfig) -> None:
        self.config = config

    def message_id(self) -> str:
        """A Message-ID in the sender's domain, recorded in the ledger before the send."""
        return make_msgid(
            "notice", domain=self.config.from_address.rpartition("@")[2] or "localhost"
        )

    def backoff(self, attempts: int) -> timedelta:
        return mailer.backoff(self.config, attempts)

    def send(self, notice: Notice, lea_name: str) -> None:
        if not notice.email or not notice.message_id:
            raise NoticeSendError("A notice needs an address and a Message-ID before it is sent")
        text = render(notice, lea_name)
        message = mailer.build_message(
            self.config,
            to=notice.email,
            subject=text.subject,
            body=text.body,
            reference=f"notice:{notice.id}",
        )
        message.replace_header("Message-ID", notice.message_id)
        message["Content-Language"] = notice.language.replace("_", "-")
        result = asyncio.run(self._deliver(message))
        if result.outcome is not mailer.Outcome.ACCEPTED:
            error = RelayUnavailable if result.connection_error else NoticeSendError
            raise error(
                f"SMTP {self.config.host}:{self.config.port} {result.outcome.value}: {result.detail}"
            )

    async def _deliver(self, message: EmailMessage) -> mailer.SendResult:
        connection = mailer.SmtpConnection(self.config)
        try:
            return await connection.send(message)
        finally:
            await connection.close()

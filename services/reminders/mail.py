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
from services.core.programs import Program
from services.core.validation import LANGUAGES
from services.delivery import mailer
from services.delivery.mailer import MailConfig
from services.reminders.ledger import Notice, NoticeKind


class NoticeSendError(ConsoleError):
    """The SMTP relay could not be reached or did not accept the notice; the ledger retries it."""


class RelayUnavailable(NoticeSendError):
    """The relay itself is unreachable: no point trying the scan's other notices now."""


# {when}: "in 3 days" or "3 days ago" (Babel); {date}: the expiry day or deadline; {lea}; {count}; {program};
# {received}: the day the SSRs were received; {rule}: the regulation that sets the deadline. What
# to do about an expiring credential is what TOMS asks: regenerate it there, then record it here
# (seed 001; FACTS.md).
RULES = {Program.CAASPP: "5 CCR § 863", Program.ELPAC: "5 CCR § 11518.15(b)"}
TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "cred_before": "SIS-vendor credential for {lea} expires {when} ({date})",
        "cred_today": "SIS-vendor credential for {lea} expires today ({date})",
        "cred_after": "SIS-vendor credential for {lea} EXPIRED {when} ({date})",
        "cred_body": "Regenerate the credential in TOMS (talk to the other program's LEA coordinator first: "
        "regenerating cuts every vendor system off for CAASPP and ELPAC), then record it in SSR "
        "Console (Credential, key c) and enter it in every vendor system that uses it. Until then "
        "families may lose portal access to their score reports. This reminder repeats until the "
        "new credential is recorded.",
        "unverified_subject": "TOMS has not confirmed the SIS-vendor credential of {lea} recorded on {date}",
        "unverified_body": "SSR Console could not reach TOMS to verify the credential recorded for {lea}. Open "
        "SSR Console (Credential, key c) and verify it (V); if TOMS refuses it, regenerate it in "
        "TOMS and record the new one.",
        "note_subject": "The LEA {program} coordinator of {lea} asks to reset the TOMS credential",
        "note_body": "Resetting the SIS-vendor credential in TOMS cuts every vendor system off, for CAASPP "
        "and ELPAC alike. Open SSR Console (Credential, key c) to read the coordination note and "
        "acknowledge it (k), or tell the requester you disagree.",
        "emergency_subject": "EMERGENCY reset of the TOMS credential of {lea}, started by the LEA {program} coordinator",
        "emergency_body": "An emergency reset was started without coordination (for example, the key leaked). "
        "Every vendor system is cut off until it is given the new credential. Open SSR Console "
        "(Credential, key c) to read the reason and acknowledge it (k).",
        "ssr_subject": "{count} {program} score reports for {lea} not yet delivered: due {date}",
        "ssr_body": "{count} {program} Student Score Reports received on {received} have not "
        "been delivered to families. They are due by {date}. Open SSR Console to deliver them.",
        "ssr_past_subject": "PAST DUE: {count} {program} score reports for {lea} were due {date}",
        "ssr_past_body": "{count} {program} Student Score Reports received on {received} were due "
        "to families by {date} ({rule}) and have still not been delivered. Open SSR Console and "
        "deliver them now.",
        "anchor_subject": "Audit log anchor for {lea}, {date}",
        "anchor_body": "The audit log of SSR Console ended at this entry when this message was written:\n\n"
        "    {anchor}\n\n"
        "Keep this message. If anyone rewrites or cuts off the log, `ssr-console audit verify "
        "--anchor {anchor}` fails; run it when in doubt.",
        "late": "(This reminder is late: the scheduler was not running when it fell due.)",
    },
    "es": {
        "cred_before": "La credencial del proveedor SIS de {lea} vence {when} ({date})",
        "cred_today": "La credencial del proveedor SIS de {lea} vence hoy ({date})",
        "cred_after": "La credencial del proveedor SIS de {lea} VENCIÓ {when} ({date})",
        "cred_body": "Vuelva a generar la credencial en TOMS (hable antes con el coordinador LEA del otro "
        "programa: hacerlo desconecta todos los sistemas del proveedor para CAASPP y ELPAC), "
        "regístrela en SSR Console (Credencial, tecla c) e ingrésela en cada sistema del "
        "proveedor. Mientras tanto, las familias pueden perder el acceso a sus informes en el "
        "portal. Este aviso se repite hasta que se registre la nueva credencial.",
        "unverified_subject": "TOMS no ha confirmado la credencial del proveedor SIS de {lea} registrada el {date}",
        "unverified_body": "SSR Console no pudo comunicarse con TOMS para verificar la credencial registrada de "
        "{lea}. Abra SSR Console (Credencial, tecla c) y verifíquela (V); si TOMS la rechaza, "
        "vuelva a generarla en TOMS y registre la nueva.",
        "note_subject": "El coordinador LEA de {program} de {lea} pide restablecer la credencial de TOMS",
        "note_body": "Restablecer la credencial del proveedor SIS en TOMS desconecta todos los sistemas del "
        "proveedor, para CAASPP y ELPAC. Abra SSR Console (Credencial, tecla c) para leer la "
        "nota de coordinación y confirmarla (k), o diga al solicitante que no está de acuerdo.",
        "emergency_subject": "Restablecimiento de EMERGENCIA de la credencial de TOMS de {lea}, iniciado por el coordinador LEA de {program}",
        "emergency_body": "Se inició un restablecimiento de emergencia sin coordinación (por ejemplo, la clave "
        "se filtró). Todos los sistemas del proveedor quedan desconectados hasta recibir la nueva "
        "credencial. Abra SSR Console (Credencial, tecla c) para leer el motivo y confirmarlo (k).",
        "ssr_subject": "{count} informes {program} de {lea} sin entregar: plazo {date}",
        "ssr_body": "{count} informes de calificaciones {program} recibidos el {received} no se "
        "han entregado a las familias. El plazo vence el {date}. Abra SSR Console para "
        "entregarlos.",
        "ssr_past_subject": "VENCIDO: {count} informes {program} de {lea} debían entregarse el "
        "{date}",
        "ssr_past_body": "{count} informes de calificaciones {program} recibidos el {received} "
        "debían llegar a las familias a más tardar el {date} ({rule}) y aún no se han entregado. "
        "Abra SSR Console y entréguelos cuanto antes.",
        "anchor_subject": "Ancla del registro de auditoría de {lea}, {date}",
        "anchor_body": "El registro de auditoría de SSR Console terminaba en esta entrada cuando se escribió este mensaje:\n\n"
        "    {anchor}\n\n"
        "Guarde este mensaje. Si alguien reescribe o recorta el registro, `ssr-console audit "
        "verify --anchor {anchor}` falla; ejecútelo en caso de duda.",
        "late": "(Este aviso llega tarde: el programador no estaba en marcha cuando correspondía.)",
    },
    "zh_Hans": {
        "cred_before": "{lea} 的 SIS 供应商凭据将于{when}过期（{date}）",
        "cred_today": "{lea} 的 SIS 供应商凭据今天过期（{date}）",
        "cred_after": "{lea} 的 SIS 供应商凭据已于{when}过期（{date}）",
        "cred_body": "请在 TOMS 中重新生成凭据（请先与另一项目的 LEA 协调员沟通：重新生成会同时切断 CAASPP 和 "
        "ELPAC 的所有供应商系统），然后在 SSR Console（凭据，按 c）中登记，并输入到使用它的每个"
        "供应商系统。在此之前，家庭可能无法在门户中查看成绩报告。在登记新凭据之前，此提醒会重复发送。",
        "unverified_subject": "{lea} 于 {date} 登记的 SIS 供应商凭据尚未得到 TOMS 确认",
        "unverified_body": "SSR Console 无法连接 TOMS 来验证 {lea} 登记的凭据。请打开 SSR Console（凭据，按 c）"
        "进行验证（V）；如果 TOMS 拒绝，请在 TOMS 中重新生成并登记新凭据。",
        "note_subject": "{lea} 的 LEA {program} 协调员请求重置 TOMS 凭据",
        "note_body": "在 TOMS 中重置 SIS 供应商凭据会切断所有供应商系统，CAASPP 和 ELPAC 都受影响。请打开 "
        "SSR Console（凭据，按 c）阅读协调说明并确认（k），或告诉请求人您不同意。",
        "emergency_subject": "{lea} 的 TOMS 凭据紧急重置，由 LEA {program} 协调员发起",
        "emergency_body": "有人在未协调的情况下发起了紧急重置（例如密钥泄露）。在收到新凭据之前，所有供应商系统"
        "都将被切断。请打开 SSR Console（凭据，按 c）阅读原因并确认（k）。",
        "ssr_subject": "{lea} 有 {count} 份 {program} 成绩报告尚未送达：截止 {date}",
        "ssr_body": "{received} 收到的 {count} 份 {program} 学生成绩报告尚未送达家庭，截止日期为 "
        "{date}。请打开 SSR Console 发送。",
        "ssr_past_subject": "已逾期：{lea} 有 {count} 份 {program} 成绩报告应于 {date} 前送达",
        "ssr_past_body": "{received} 收到的 {count} 份 {program} 学生成绩报告应于 {date} 前送达家庭"
        "（{rule}），但至今仍未送达。请立即打开 SSR Console 发送。",
        "anchor_subject": "{lea} 的审计日志锚点，{date}",
        "anchor_body": "写这封邮件时，SSR Console 的审计日志最后一条为：\n\n"
        "    {anchor}\n\n"
        "请保留此邮件。如果有人改写或截断日志，`ssr-console audit verify --anchor {anchor}` "
        "会失败；有疑问时请运行它。",
        "late": "（此提醒已延迟：到期时调度程序未运行。）",
    },
    "vi": {
        "cred_before": "Thông tin xác thực nhà cung cấp SIS của {lea} hết hạn {when} ({date})",
        "cred_today": "Thông tin xác thực nhà cung cấp SIS của {lea} hết hạn hôm nay ({date})",
        "cred_after": "Thông tin xác thực nhà cung cấp SIS của {lea} ĐÃ HẾT HẠN {when} ({date})",
        "cred_body": "Hãy tạo lại thông tin xác thực trong TOMS (trao đổi trước với điều phối viên LEA của "
        "chương trình kia: việc tạo lại ngắt mọi hệ thống của nhà cung cấp cho cả CAASPP và "
        "ELPAC), rồi ghi lại trong SSR Console (Thông tin xác thực, phím c) và nhập vào mọi hệ "
        "thống của nhà cung cấp. Trước đó, các gia đình có thể mất quyền xem báo cáo điểm trên "
        "cổng thông tin. Lời nhắc này lặp lại cho đến khi thông tin mới được ghi lại.",
        "unverified_subject": "TOMS chưa xác nhận thông tin xác thực nhà cung cấp SIS của {lea} ghi ngày {date}",
        "unverified_body": "SSR Console không liên lạc được với TOMS để xác minh thông tin xác thực đã ghi của "
        "{lea}. Mở SSR Console (Thông tin xác thực, phím c) và xác minh (V); nếu TOMS từ chối, "
        "hãy tạo lại trong TOMS và ghi lại thông tin mới.",
        "note_subject": "Điều phối viên LEA {program} của {lea} đề nghị đặt lại thông tin xác thực TOMS",
        "note_body": "Đặt lại thông tin xác thực nhà cung cấp SIS trong TOMS sẽ ngắt mọi hệ thống của nhà "
        "cung cấp, cho cả CAASPP và ELPAC. Mở SSR Console (Thông tin xác thực, phím c) để đọc "
        "ghi chú phối hợp và xác nhận (k), hoặc báo cho người đề nghị nếu bạn không đồng ý.",
        "emergency_subject": "Đặt lại KHẨN CẤP thông tin xác thực TOMS của {lea}, do điều phối viên LEA {program} khởi động",
        "emergency_body": "Một lần đặt lại khẩn cấp đã được khởi động mà không phối hợp (ví dụ: khóa bị lộ). Mọi "
        "hệ thống của nhà cung cấp bị ngắt cho đến khi nhận thông tin mới. Mở SSR Console (Thông "
        "tin xác thực, phím c) để đọc lý do và xác nhận (k).",
        "ssr_subject": "{count} báo cáo {program} của {lea} chưa được gửi: hạn {date}",
        "ssr_body": "{count} Báo cáo Điểm Học sinh {program} nhận ngày {received} chưa được gửi "
        "đến các gia đình. Hạn chót là {date}. Mở SSR Console để gửi.",
        "ssr_past_subject": "QUÁ HẠN: {count} báo cáo {program} của {lea} đã đến hạn ngày {date}",
        "ssr_past_body": "{count} Báo cáo Điểm Học sinh {program} nhận ngày {received} lẽ ra phải "
        "đến tay các gia đình trước ngày {date} ({rule}) nhưng vẫn chưa được gửi. Hãy mở SSR "
        "Console và gửi ngay.",
        "anchor_subject": "Mốc nhật ký kiểm tra của {lea}, {date}",
        "anchor_body": "Khi thư này được viết, nhật ký kiểm tra của SSR Console kết thúc ở mục này:\n\n"
        "    {anchor}\n\n"
        "Hãy giữ thư này. Nếu ai đó viết lại hoặc cắt bớt nhật ký, `ssr-console audit verify "
        "--anchor {anchor}` sẽ báo lỗi; hãy chạy lệnh khi nghi ngờ.",
        "late": "(Lời nhắc này bị trễ: bộ lập lịch không chạy khi đến hạn.)",
    },
    "fil": {
        "cred_before": "Mag-e-expire {when} ang SIS-vendor credential ng {lea} ({date})",
        "cred_today": "Mag-e-expire ngayon ang SIS-vendor credential ng {lea} ({date})",
        "cred_after": "NAG-EXPIRE {when} ang SIS-vendor credential ng {lea} ({date})",
        "cred_body": "I-regenerate ang credential sa TOMS (kausapin muna ang LEA coordinator ng kabilang "
        "programa: ang pag-regenerate ay pumuputol sa bawat vendor system para sa CAASPP at "
        "ELPAC), at itala ito sa SSR Console (Credential, key c) at ilagay sa bawat vendor "
        "system na gumagamit nito. Hanggang noon, maaaring mawalan ng access ang mga pamilya sa "
        "kanilang score report sa portal. Uulit ang paalalang ito hanggang maitala ang bago.",
        "unverified_subject": "Hindi pa kinukumpirma ng TOMS ang SIS-vendor credential ng {lea} na naitala noong {date}",
        "unverified_body": "Hindi maabot ng SSR Console ang TOMS para i-verify ang naitalang credential ng {lea}. "
        "Buksan ang SSR Console (Credential, key c) at i-verify ito (V); kung tanggihan ng TOMS, "
        "i-regenerate ito sa TOMS at itala ang bago.",
        "note_subject": "Humihiling ang LEA {program} coordinator ng {lea} na i-reset ang TOMS credential",
        "note_body": "Ang pag-reset ng SIS-vendor credential sa TOMS ay pumuputol sa bawat vendor system, para "
        "sa CAASPP at ELPAC. Buksan ang SSR Console (Credential, key c) para basahin ang tala ng "
        "koordinasyon at kilalanin ito (k), o sabihin sa humiling kung hindi ka sang-ayon.",
        "emergency_subject": "EMERGENCY reset ng TOMS credential ng {lea}, sinimulan ng LEA {program} coordinator",
        "emergency_body": "Sinimulan ang isang emergency reset nang walang koordinasyon (halimbawa, nag-leak ang "
        "key). Putol ang bawat vendor system hanggang mabigyan ng bagong credential. Buksan ang "
        "SSR Console (Credential, key c) para basahin ang dahilan at kilalanin ito (k).",
        "ssr_subject": "{count} {program} score report ng {lea} ang hindi pa naihahatid: "
        "hanggang {date}",
        "ssr_body": "{count} {program} Student Score Report na natanggap noong {received} ang "
        "hindi pa naihahatid sa mga pamilya. Ang takdang petsa ay {date}. Buksan ang SSR Console "
        "para ihatid ang mga ito.",
        "ssr_past_subject": "LAMPAS NA: {count} {program} score report ng {lea} ang dapat "
        "naihatid noong {date}",
        "ssr_past_body": "{count} {program} Student Score Report na natanggap noong {received} ang "
        "dapat naihatid sa mga pamilya hanggang {date} ({rule}), ngunit hindi pa rin naihahatid. "
        "Buksan ang SSR Console at ihatid ang mga ito ngayon.",
        "anchor_subject": "Anchor ng audit log ng {lea}, {date}",
        "anchor_body": "Nagtatapos sa entry na ito ang audit log ng SSR Console nang isulat ang mensaheng ito:\n\n"
        "    {anchor}\n\n"
        "Itago ang mensaheng ito. Kung may magsulat muli o pumutol sa log, babagsak ang "
        "`ssr-console audit verify --anchor {anchor}`; patakbuhin ito kapag may duda.",
        "late": "(Huli ang paalalang ito: hindi tumatakbo ang scheduler nang ito ay dapat ipadala.)",
    },
}
assert set(TEXTS) <= set(LANGUAGES), "notice texts only for console languages"


_CREDENTIAL_TEXTS = {
    NoticeKind.CREDENTIAL_UNVERIFIED: "unverified",
    NoticeKind.RESET_NOTE: "note",
    NoticeKind.RESET_EMERGENCY: "emergency",
}


@dataclass(frozen=True)
class NoticeText:
    subject: str
    body: str


def render(notice: Notice, lea_name: str) -> NoticeText:
    """The notice's subject and body in its recipient's language."""
    language = notice.language if notice.language in TEXTS else "en"
    texts = TEXTS[language]
    day = format_date(notice.event_on, format="full", locale=language)
    if notice.kind is NoticeKind.AUDIT_ANCHOR:
        subject = texts["anchor_subject"].format(lea=lea_name, date=day)
        body = texts["anchor_body"].format(anchor=notice.anchor)
    elif notice.kind in _CREDENTIAL_TEXTS:
        prefix = _CREDENTIAL_TEXTS[notice.kind]
        subject = texts[f"{prefix}_subject"].format(lea=lea_name, program=notice.program, date=day)
        body = texts[f"{prefix}_body"].format(lea=lea_name, program=notice.program, date=day)
    elif notice.kind is NoticeKind.CREDENTIAL_EXPIRY:
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
            "rule": RULES[Program(str(notice.program))],
        }
        past = "ssr_past_" if notice.offset < 0 else "ssr_"
        subject = texts[f"{past}subject"].format(**values)
        body = texts[f"{past}body"].format(**values)
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
            language=notice.language.replace("_", "-"),
        )
        message.replace_header("Message-ID", notice.message_id)
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

"""The ``smtp`` provider: mail through an SMTP server with the standard library.

smtplib blocks, so a page is sent in a worker thread over one connection. Every mail carries
``X-Idempotency-Key`` and a Message-ID derived from the key, so a resent mail can be
recognised downstream.
"""

from __future__ import annotations

import asyncio
import hashlib
import smtplib
import ssl
from email import policy
from email.message import EmailMessage

from journeys.channels_config import SmtpProvider
from journeys.contracts import failures

from .message import Message, SendResult, failed, sent

# RFC 5322 allows 998 characters a line: with the default 78 a long idempotency key (a run id,
# a node, a user) is folded onto a continuation line, and a receiver that unfolds without
# stripping reads it with a leading space, a different key.
_POLICY = policy.SMTP.clone(max_line_length=998)


class SmtpSender:
    """Sends a page of mails over one SMTP connection."""

    def __init__(self, config: SmtpProvider) -> None:
        self._config = config

    async def send(self, messages: list[Message]) -> list[SendResult]:
        """Send every mail; a lost connection leaves the unsent ones RETRYABLE."""
        if not messages:
            return []
        return await asyncio.to_thread(self._send_page, messages)

    async def aclose(self) -> None:
        """Connections last one page; nothing stays open."""

    def _send_page(self, messages: list[Message]) -> list[SendResult]:
        results: dict[int, SendResult] = {}
        for index, message in enumerate(messages):
            if not message.to.email:
                results[index] = failed(
                    message,
                    retryable=False,
                    category=failures.NO_RECIPIENT,
                    reason="no email address",
                )
        try:
            with self._connect() as smtp:
                for index, message in enumerate(messages):
                    if index not in results:
                        results[index] = self._send_one(smtp, message)
        except (smtplib.SMTPException, OSError) as exc:
            # the connection failed as a whole: what it did not confirm may go again
            reason = f"smtp connection failed: {type(exc).__name__}: {exc}"
            for index, message in enumerate(messages):
                results.setdefault(
                    index,
                    failed(message, retryable=True, category=failures.CONNECTION, reason=reason),
                )
        return [results[index] for index in range(len(messages))]

    def _connect(self) -> smtplib.SMTP:
        config = self._config
        timeout = config.timeout.total_seconds()
        smtp: smtplib.SMTP
        if config.tls == "ssl":
            context = ssl.create_default_context()
            smtp = smtplib.SMTP_SSL(config.host, config.port, timeout=timeout, context=context)
        else:
            smtp = smtplib.SMTP(config.host, config.port, timeout=timeout)
        try:
            if config.tls == "starttls":
                smtp.starttls(context=ssl.create_default_context())
            if config.username is not None:
                smtp.login(config.username, config.password or "")
        except BaseException:
            smtp.close()
            raise
        return smtp

    def _send_one(self, smtp: smtplib.SMTP, message: Message) -> SendResult:
        try:
            mail = self._mail(message)
        except ValueError as exc:  # e.g. a line break in the address or subject
            reason = f"bad mail: {exc}"
            return failed(message, retryable=False, category=failures.BAD_MESSAGE, reason=reason)
        try:
            smtp.send_message(mail)
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            return _refused(message, code, text)
        except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
            return _refused(message, exc.smtp_code, exc.smtp_error)
        return sent(message, str(mail["Message-ID"]))

    def _mail(self, message: Message) -> EmailMessage:
        content = message.content
        mail = EmailMessage(policy=_POLICY)
        mail["From"] = self._config.sender
        mail["To"] = message.to.email or ""
        mail["Subject"] = content.get("subject", "")
        digest = hashlib.sha256(message.idempotency_key.encode()).hexdigest()[:32]
        domain = self._config.sender.rpartition("@")[2]
        mail["Message-ID"] = f"<{digest}@{domain}>"
        mail["X-Idempotency-Key"] = message.idempotency_key
        text, html = content.get("body"), content.get("html")
        if text is not None:
            mail.set_content(text)
            if html is not None:
                mail.add_alternative(html, subtype="html")
        else:
            mail.set_content(html or "", subtype="html")
        return mail


def _refused(message: Message, code: int, text: bytes | str) -> SendResult:
    detail = text.decode(errors="replace") if isinstance(text, bytes) else text
    # 4xx is the server's "try again later"; 5xx is final
    return failed(
        message,
        retryable=400 <= code < 500,
        category=failures.smtp_status(code),
        reason=f"SMTP {code}: {detail}"[:500],
    )

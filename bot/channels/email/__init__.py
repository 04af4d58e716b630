"""Email as a channel for staff alerts (SMTP, `aiosmtplib`)."""

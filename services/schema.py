"""Imports every module that declares tables, so the metadata Alembic compares is complete.

One `import services.<module>` line per table module, kept sorted.
"""

import services.access.tables  # noqa: F401
import services.audit.tables  # noqa: F401
import services.bounces.tables  # noqa: F401
import services.channels.batches  # noqa: F401
import services.channels.portal_tables  # noqa: F401
import services.core.columns  # noqa: F401
import services.core.programs  # noqa: F401
import services.credential.tables  # noqa: F401
import services.delivery.ledger  # noqa: F401
import services.helpdesk.email_changes  # noqa: F401
import services.intake.records  # noqa: F401
import services.intake.score_reports  # noqa: F401
import services.plan.family_channel  # noqa: F401
import services.plan.tables  # noqa: F401
import services.reminders.ledger  # noqa: F401
import services.reminders.scheduler_lock  # noqa: F401
import services.reports.tables  # noqa: F401
import services.roster.group_tables  # noqa: F401
import services.roster.tables  # noqa: F401

"""Imports every module that declares tables, so the metadata Alembic compares is complete.

One `import services.<module>` line per table module, kept sorted.
"""

import services.channel_batches  # noqa: F401
import services.credential_tables  # noqa: F401
import services.delivery_ledger  # noqa: F401
import services.family_channel  # noqa: F401
import services.intake_records  # noqa: F401
import services.models  # noqa: F401
import services.notice_ledger  # noqa: F401
import services.plan_tables  # noqa: F401
import services.portal_tables  # noqa: F401
import services.report_tables  # noqa: F401
import services.scheduler_lock  # noqa: F401
import services.student_group_tables  # noqa: F401

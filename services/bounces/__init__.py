"""Bounces: read the district's bounce mailbox, tell hard bounces from soft ones and from
out-of-office replies, match each to the family's delivery, and move bounced families to another
channel.

May import: ``core``, ``access``, ``audit``, ``roster``, ``intake``, ``plan``, ``delivery``, ``channels``. Never textual, console, screens or widgets.
"""

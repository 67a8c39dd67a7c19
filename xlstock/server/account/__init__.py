"""The online account: pages under ``/account/`` where a merchant registers the shop URL,
switches automatic stock updates on and off, creates and revokes API tokens, and sees
the stock levels and their history (docs/account.md). Storage is
:mod:`xlstock.server.accounts`; the pages are :mod:`xlstock.server.account.pages`."""

from xlstock.server.account.pages import account_pages

__all__ = ["account_pages"]

"""Helpers for the macro workbook's VBA project: the compound-file container writer
(:mod:`~xlstock.workbook.vba.cfb`). The MS-OVBA streams themselves live in
:mod:`xlstock.workbook.ovba`."""

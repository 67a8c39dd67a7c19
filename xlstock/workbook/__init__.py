"""The sheet layer: the workbook layout (``layout``) over one adapter per engine:
openpyxl on a file (``openpyxl_adapter``) and xlwings on live Excel (``xlwings_adapter``)."""

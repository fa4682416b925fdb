"""The reports: figures of the read models by area or by month, each a `table.Table` suppressed and sent one way."""

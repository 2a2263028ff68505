ALTER TABLE usage_records ADD COLUMN counted_input {{int}} NOT NULL DEFAULT 0;

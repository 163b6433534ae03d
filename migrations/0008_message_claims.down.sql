ALTER TABLE conversation_messages DROP COLUMN claimed_by;

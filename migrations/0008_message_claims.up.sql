-- The Dramatiq message that moved a conversation reply from 'queued' to 'sending': only that
-- message (its retries, or its redelivery after its worker died) may send the reply again.
ALTER TABLE conversation_messages ADD COLUMN claimed_by varchar(64);

DROP FUNCTION IF EXISTS bg_outbox_pending();
DROP FUNCTION IF EXISTS bg_outbox_sent(uuid[], uuid[]);
DROP FUNCTION IF EXISTS bg_outbox_claim(integer);
DROP FUNCTION IF EXISTS bg_outbox_lead();
DROP TABLE IF EXISTS outbox;

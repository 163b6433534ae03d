-- Row-level security for the conversation tables (same policy as 0001).
SELECT bg_enable_tenant_rls(t::regclass)
  FROM unnest(ARRAY['conversations', 'conversation_messages', 'conversation_labels', 'conversation_label_links',
                'conversation_reads', 'canned_responses']) AS t;

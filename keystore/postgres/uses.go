package postgres

import (
	"context"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
)

// writeUses writes a batch of the uses of keys (last_used_at) that
// RecordUse queued, in a statement for the scopes and one for the keys,
// so that Verify does not write to the database per request. Another
// replica sees them within Options.UseFlushInterval.
func (s *Store) writeUses(ctx context.Context, b keystore.UseBatch) error {
	if len(b.Scopes) > 0 {
		ids := make([]string, 0, len(b.Scopes))
		uses := make([]string, 0, len(b.Scopes))
		for id, m := range b.Scopes {
			ids = append(ids, id)
			uses = append(uses, keystore.EncodeScopeUses(m))
		}
		// Each scope keeps the later of its stored and its new time.
		_, err := s.pool.Exec(ctx,
			`UPDATE keys AS k SET scope_uses = (
			     SELECT coalesce(jsonb_object_agg(e.key, e.t), '{}'::jsonb) FROM (
			         SELECT key, max(value::bigint) AS t FROM (
			             SELECT key, value FROM jsonb_each_text(k.scope_uses)
			             UNION ALL
			             SELECT key, value FROM jsonb_each_text(u.uses)) AS a
			         GROUP BY key) AS e)
			 FROM unnest($1::text[], $2::jsonb[]) AS u (id, uses)
			 WHERE k.id = u.id`,
			ids, uses)
		if err != nil {
			return s.fail(ctx, "record key use", err)
		}
	}
	if len(b.Keys) == 0 {
		return nil
	}
	ids := make([]string, 0, len(b.Keys))
	times := make([]time.Time, 0, len(b.Keys))
	for id, t := range b.Keys {
		ids = append(ids, id)
		times = append(times, t)
	}
	_, err := s.pool.Exec(ctx,
		`UPDATE keys AS k SET last_used_at = u.t
		 FROM unnest($1::text[], $2::timestamptz[]) AS u (id, t)
		 WHERE k.id = u.id AND (k.last_used_at IS NULL OR k.last_used_at < u.t)`,
		ids, times)
	if err != nil {
		return s.fail(ctx, "record key use", err)
	}
	return nil
}

package keystore_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
)

// batches records what a UseQueue hands its store, failing while fail is
// set.
type batches struct {
	got  []keystore.UseBatch
	fail error
}

func (b *batches) write(_ context.Context, u keystore.UseBatch) error {
	if b.fail != nil {
		return b.fail
	}
	b.got = append(b.got, u)
	return nil
}

func TestUseQueueKeepsTheLatestUse(t *testing.T) {
	var w batches
	q := keystore.NewUseQueue(time.Hour, w.write)
	t0 := time.Unix(1_700_000_000, 0).UTC()
	q.Add("key_a", t0.Add(2*time.Second), []string{"bots:read"})
	q.Add("key_a", t0, []string{"bots:read", "bots:write"})
	q.Add("key_b", t0, nil)
	if err := q.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []keystore.UseBatch{{
		Keys: map[string]time.Time{"key_a": t0.Add(2 * time.Second), "key_b": t0},
		Scopes: map[string]map[string]time.Time{
			"key_a": {"bots:read": t0.Add(2 * time.Second), "bots:write": t0},
		},
	}}
	if !reflect.DeepEqual(w.got, want) {
		t.Errorf("written %v, want %v", w.got, want)
	}
}

func TestUseQueueShowsWhatIsNotWritten(t *testing.T) {
	var w batches
	q := keystore.NewUseQueue(time.Hour, w.write)
	defer q.Stop(context.Background())
	t0 := time.Unix(1_700_000_000, 0).UTC()
	stored := t0.Add(-time.Minute)
	k := &keystore.Key{ID: "key_a", LastUsedAt: &stored}
	k.SetScopeUses(map[string]time.Time{"bots:read": stored, "bots:write": t0.Add(time.Minute)})
	shared := k.ScopesLastUsed

	q.Add("key_a", t0, []string{"bots:read", "bots:write"})
	q.Add("key_b", t0.Add(time.Hour), []string{"bots:read"})
	q.Show(k)
	if k.LastUsedAt == nil || !k.LastUsedAt.Equal(t0) {
		t.Errorf("last used %v, want %v", k.LastUsedAt, t0)
	}
	wantUses := map[string]time.Time{"bots:read": t0, "bots:write": t0.Add(time.Minute)}
	if !reflect.DeepEqual(k.ScopesLastUsed, wantUses) || !reflect.DeepEqual(k.UsedScopes, []string{"bots:read", "bots:write"}) {
		t.Errorf("scope uses %v (%v), want %v", k.ScopesLastUsed, k.UsedScopes, wantUses)
	}
	if !shared["bots:read"].Equal(stored) {
		t.Errorf("Show changed the scope uses the key shared: %v", shared)
	}

	// A later stored use stays; a key with nothing queued is unchanged.
	later := t0.Add(time.Hour)
	k2 := &keystore.Key{ID: "key_a", LastUsedAt: &later}
	q.Show(k2)
	if !k2.LastUsedAt.Equal(later) {
		t.Errorf("last used %v, want the stored %v", k2.LastUsedAt, later)
	}
	k3 := &keystore.Key{ID: "key_c"}
	q.Show(k3)
	q.Show(nil)
	if k3.LastUsedAt != nil || k3.ScopesLastUsed != nil {
		t.Errorf("key with no uses shows %v %v", k3.LastUsedAt, k3.ScopesLastUsed)
	}
}

func TestUseQueueKeepsUsesUntilWritten(t *testing.T) {
	w := batches{fail: errors.New("database is locked")}
	q := keystore.NewUseQueue(time.Hour, w.write)
	t0 := time.Unix(1_700_000_000, 0).UTC()
	q.Add("key_a", t0, []string{"bots:read"})
	if err := q.Flush(context.Background()); err == nil {
		t.Fatal("Flush hid the write's error")
	}
	k := &keystore.Key{ID: "key_a"}
	q.Show(k)
	if k.LastUsedAt == nil || !k.LastUsedAt.Equal(t0) || !k.ScopesLastUsed["bots:read"].Equal(t0) {
		t.Errorf("after a failed write the key shows %v %v; want the queued use", k.LastUsedAt, k.ScopesLastUsed)
	}

	w.fail = nil
	if err := q.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(w.got) != 1 {
		t.Fatalf("%d batches written, want 1", len(w.got))
	}
	// Written: nothing is left to show or write.
	k = &keystore.Key{ID: "key_a"}
	q.Show(k)
	if k.LastUsedAt != nil || k.ScopesLastUsed != nil {
		t.Errorf("after the write the key shows %v %v; want nothing queued", k.LastUsedAt, k.ScopesLastUsed)
	}
	if err := q.Stop(context.Background()); err != nil || len(w.got) != 1 {
		t.Errorf("Stop = %v after %d batches; want nil after 1 (nothing left)", err, len(w.got))
	}
}

// A use queued while its batch is written stays queued for the next one.
func TestUseQueueKeepsUsesQueuedDuringAWrite(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0).UTC()
	var q *keystore.UseQueue
	var got []keystore.UseBatch
	q = keystore.NewUseQueue(time.Hour, func(_ context.Context, b keystore.UseBatch) error {
		if len(got) == 0 {
			q.Add("key_a", t0.Add(time.Second), []string{"bots:read"})
		}
		got = append(got, b)
		return nil
	})
	q.Add("key_a", t0, []string{"bots:read"})
	if err := q.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := q.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !got[1].Keys["key_a"].Equal(t0.Add(time.Second)) || !got[1].Scopes["key_a"]["bots:read"].Equal(t0.Add(time.Second)) {
		t.Errorf("batches %v; want a second with the use made during the first", got)
	}
}

// The writer runs every interval from the first use, and Stop ends it and
// returns its first result to later calls.
func TestUseQueueWritesEveryInterval(t *testing.T) {
	written := make(chan keystore.UseBatch, 1)
	q := keystore.NewUseQueue(time.Millisecond, func(_ context.Context, b keystore.UseBatch) error {
		written <- b
		return nil
	})
	t0 := time.Unix(1_700_000_000, 0).UTC()
	q.Add("key_a", t0, nil)
	if b := <-written; !b.Keys["key_a"].Equal(t0) {
		t.Errorf("the writer wrote %v, want key_a at %v", b, t0)
	}
	if err := q.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := q.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-written:
		t.Errorf("wrote %v after Stop with nothing queued", b)
	default:
	}
}

func TestUseQueueStopWithoutUses(t *testing.T) {
	q := keystore.NewUseQueue(0, func(context.Context, keystore.UseBatch) error {
		return errors.New("nothing to write, nothing written")
	})
	if err := q.Stop(context.Background()); err != nil {
		t.Errorf("Stop = %v, want nil: nothing was queued", err)
	}
}

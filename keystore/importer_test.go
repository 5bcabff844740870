package keystore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestReadLines(t *testing.T) {
	long := strings.Repeat("x", MaxImportLine+10)
	in := "\ufefffirst\r\n\n" + long + "\nafter\n" + strings.Repeat("y", MaxImportLine) + "\nlast"
	type line struct {
		n       int
		text    string
		tooLong bool
	}
	var got []line
	err := ReadLines(strings.NewReader(in), func(n int, b []byte, tooLong bool) error {
		text := string(b)
		if len(text) > 10 {
			text = fmt.Sprintf("%d bytes", len(text))
		}
		got = append(got, line{n, text, tooLong})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []line{
		{1, "first", false},
		{2, "", false},
		{3, fmt.Sprintf("%d bytes", MaxImportLine-64<<10), true}, // cut short, not held whole
		{4, "after", false},
		{5, fmt.Sprintf("%d bytes", MaxImportLine), false},
		{6, "last", false},
	}
	if len(got) != len(want) {
		t.Fatalf("lines = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i].n != want[i].n || got[i].tooLong != want[i].tooLong ||
			(!want[i].tooLong && got[i].text != want[i].text) {
			t.Errorf("line %d = %+v, want %+v", i+1, got[i], want[i])
		}
	}
}

// pipeRecords hands every record over in order, with the producer's error
// after the records it emitted, and stops the producer when the consumer
// fails.
func TestPipeRecords(t *testing.T) {
	produce := func(n int, fail error, emitted *int, done chan<- struct{}) func(func(importRecord) error) error {
		return func(emit func(importRecord) error) error {
			defer close(done)
			for i := 1; i <= n; i++ {
				if err := emit(importRecord{line: i}); err != nil {
					return err
				}
				*emitted = i
			}
			return fail
		}
	}
	t.Run("in order, then the producer's error", func(t *testing.T) {
		readErr := errors.New("read error")
		var got []int
		var emitted int
		done := make(chan struct{})
		err := pipeRecords(context.Background(), produce(1000, readErr, &emitted, done), func(r importRecord) error {
			got = append(got, r.line)
			return nil
		})
		if !errors.Is(err, readErr) {
			t.Errorf("err = %v, want %v", err, readErr)
		}
		if len(got) != 1000 {
			t.Fatalf("%d records arrived, want 1000", len(got))
		}
		for i, line := range got {
			if line != i+1 {
				t.Fatalf("record %d is line %d", i+1, line)
			}
		}
	})
	t.Run("the consumer's error stops the producer", func(t *testing.T) {
		storeErr := errors.New("store error")
		var emitted, consumed int
		done := make(chan struct{})
		err := pipeRecords(context.Background(), produce(1_000_000, nil, &emitted, done), func(r importRecord) error {
			consumed++
			if r.line == 300 {
				return storeErr
			}
			return nil
		})
		if !errors.Is(err, storeErr) || consumed != 300 {
			t.Errorf("err = %v after %d records, want %v after 300", err, consumed, storeErr)
		}
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("the producer did not stop")
		}
		// It may be ahead by the chunks in flight, no more.
		if emitted >= 300+10*importChunk {
			t.Errorf("the producer emitted %d records after the consumer stopped at 300", emitted)
		}
	})
	t.Run("an interrupt ends the wait for a blocked producer", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		blocked := make(chan struct{})
		defer close(blocked)
		time.AfterFunc(50*time.Millisecond, cancel)
		err := pipeRecords(ctx, func(func(importRecord) error) error {
			<-blocked // as a read of a terminal that nobody types into
			return nil
		}, func(importRecord) error { return nil })
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want %v", err, context.Canceled)
		}
	})
}

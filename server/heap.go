package server

import (
	"context"
	"os"
	"runtime"
	"runtime/debug"
	"time"
)

// heapFloor is the least heap that keyctl serve lets the garbage collector
// aim for. The live heap of a key service is a few megabytes (the SQLite
// pages live outside it), so with Go's default GOGC=100 a collection would
// start every few megabytes of garbage, many times a second under load,
// a measurable part of the CPU (BENCHMARKS.md, goal 2). Aiming at 32 MiB at least costs at most
// that much memory; a heap that grows larger (a big verification cache)
// is collected as usual.
const heapFloor = 32 << 20

// keepHeapFloor sets GOGC, once a second, so that the next collection
// starts at heapFloor or at twice the live heap, whichever is more. It does
// nothing when the user set GOGC.
//
// It reads the heap with runtime.ReadMemStats, which stops the program
// briefly, once a second, rather than with runtime/metrics, whose package
// initialisation every keyctl command would pay.
func keepHeapFloor(ctx context.Context) {
	if _, set := os.LookupEnv("GOGC"); set {
		return
	}
	var ms runtime.MemStats
	current := 100
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		runtime.ReadMemStats(&ms)
		// The last collection aimed the next one at the heap it found
		// live grown by current percent.
		live := ms.NextGC * 100 / uint64(100+current)
		if want := gcPercentFor(live); want < current*4/5 || want > current*5/4 {
			debug.SetGCPercent(want)
			current = want
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// gcPercentFor is the GOGC that aims the next collection at heapFloor for
// a live heap smaller than half of it, at most 1000, and 100 otherwise.
func gcPercentFor(live uint64) int {
	if live == 0 || live >= heapFloor/2 {
		return 100
	}
	return min(int(heapFloor*100/live)-100, 1000)
}

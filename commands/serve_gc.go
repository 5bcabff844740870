package commands

import (
	"context"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// heapFloor is the least heap that keyctl serve lets the garbage collector
// aim for. The live heap of a key service is a few megabytes (the SQLite
// pages live outside it), so with Go's default GOGC=100 a collection would
// start every few megabytes of garbage, many times a second under load,
// costing a tenth of the CPU. Aiming at 32 MiB at least costs at most
// that much memory; a heap that grows larger (a big verification cache)
// is collected as usual.
const heapFloor = 32 << 20

// keepHeapFloor sets GOGC, once a second, so that the next collection
// starts at heapFloor or at twice the live heap, whichever is more. It does
// nothing when the user set GOGC.
func keepHeapFloor(ctx context.Context) {
	if _, set := os.LookupEnv("GOGC"); set {
		return
	}
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	current := 100
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		metrics.Read(sample)
		want := 100
		if sample[0].Value.Kind() == metrics.KindUint64 {
			if live := sample[0].Value.Uint64(); live > 0 && live < heapFloor/2 {
				want = min(int(heapFloor*100/live)-100, 1000)
			}
		}
		if want < current*4/5 || want > current*5/4 {
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

package server

import "testing"

func TestGCPercentFor(t *testing.T) {
	for _, tc := range []struct {
		live uint64
		want int
	}{
		{0, 100},               // nothing known yet
		{1 << 20, 1000},        // 32x would be 3100: capped
		{4 << 20, 700},         // the next collection at 32 MiB
		{8 << 20, 300},         // ditto
		{heapFloor / 2, 100},   // twice the live heap is the floor
		{heapFloor * 4, 100},   // a big heap: Go's default
		{heapFloor/2 - 1, 100}, // just under half: 100 (integer division)
	} {
		if got := gcPercentFor(tc.live); got != tc.want {
			t.Errorf("gcPercentFor(%d) = %d, want %d", tc.live, got, tc.want)
		}
	}
}

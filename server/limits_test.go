package server

import (
	"strings"
	"testing"
)

func TestConnLimitsFor(t *testing.T) {
	if lim, err := connLimitsFor(0); err != nil || lim.total != 0 {
		t.Errorf("no limit known: %+v, %v; want no limit", lim, err)
	}
	lim, err := connLimitsFor(400)
	if err != nil || lim.total != 400-FDReserve() || lim.serve >= lim.total || lim.serve < lim.total*8/10 {
		t.Errorf("connLimitsFor(400) = %+v, %v", lim, err)
	}
	if _, err := connLimitsFor(uint64(FDReserve() + 3)); err == nil || !strings.Contains(err.Error(), "ulimit -n") {
		t.Errorf("a limit too low: %v, want an error naming ulimit -n", err)
	}
}

package keystore_test

import (
	"fmt"
	"math"
	"math/big"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
)

const day = 24 * time.Hour

func TestParseDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"0", 0},
		{"0s", 0},
		{"0d", 0},
		{"90d", 90 * day},
		{"2w", 14 * day},
		{"24h", 24 * time.Hour},
		{"1d12h", 36 * time.Hour},
		{"30m", 30 * time.Minute},
		{"45s", 45 * time.Second},
		{"1m5s", 65 * time.Second},
		{"1w2d3h4m5s", 9*day + 3*time.Hour + 4*time.Minute + 5*time.Second},
		{"007d", 7 * day},
		{"1h1h", 2 * time.Hour},
		{"106751d", 106751 * day},
		{"9223372036s", 9223372036 * time.Second},
		{"15250w", 15250 * 7 * day},
	} {
		got, err := keystore.ParseDuration(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestParseDurationErrors(t *testing.T) {
	for _, in := range []string{
		"", "-1d", "-0", "+1d", "10", "00", "d", "1x", "1ms", "1us", "1µs", "1ns", "1.5d", "1,5d",
		"1D", "1H", " 1d", "1d ", "1 d", "1d-1h", "1dd", "d1", "1y", "1M", "٣d", "1d\n", "0x10s",
		"1_000d", "inf", "NaN",
		"999999999999999d", "106752d", "15251w", "9223372037s", "2562048h", "153722868m",
		"106751d1d", "9223372036s1s", "99999999999999999999s", "1" + strings.Repeat("0", 100) + "s",
	} {
		got, err := keystore.ParseDuration(in)
		if got != 0 {
			t.Errorf("ParseDuration(%q) = %v with an error", in, got)
		}
		e := wantCode(t, err, keystore.EINVALID)
		if !strings.HasPrefix(e.Message, "invalid duration ") || len(e.Message) > 200 {
			t.Errorf("ParseDuration(%q) message = %q", in, e.Message)
		}
	}
}

var durationRE = regexp.MustCompile(`^(?:[0-9]+[wdhms])+$`)

// refDuration parses s exactly, in big integers, from the grammar above.
func refDuration(s string) (*big.Int, bool) {
	if s == "0" {
		return new(big.Int), true
	}
	if !durationRE.MatchString(s) {
		return nil, false
	}
	units := map[byte]int64{'w': int64(7 * day), 'd': int64(day), 'h': int64(time.Hour), 'm': int64(time.Minute), 's': int64(time.Second)}
	total := new(big.Int)
	for _, m := range regexp.MustCompile(`([0-9]+)([wdhms])`).FindAllStringSubmatch(s, -1) {
		n, _ := new(big.Int).SetString(m[1], 10)
		total.Add(total, n.Mul(n, big.NewInt(units[m[2][0]])))
	}
	return total, true
}

func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{
		"0", "90d", "2w", "24h", "1d12h", "30m", "45s", "1ms", "1.5d", "-1d", "", "d", "10",
		"999999999999999d", "106751d", "106752d", "9223372036s", "9223372036s1s", "1w1d1h1m1s",
		"00", "1µs", "1m5s",
	} {
		f.Add(s)
	}
	maxInt64 := big.NewInt(math.MaxInt64)
	f.Fuzz(func(t *testing.T, s string) {
		got, err := keystore.ParseDuration(s)
		ref, ok := refDuration(s)
		if ok && ref.Cmp(maxInt64) > 0 {
			ok = false // too large for a time.Duration
		}
		if err != nil {
			if got != 0 {
				t.Fatalf("ParseDuration(%q) = %v with an error", s, got)
			}
			wantCode(t, err, keystore.EINVALID)
			if ok {
				t.Fatalf("ParseDuration(%q) rejected a valid duration of %v ns: %v", s, ref, err)
			}
			return
		}
		if !ok {
			t.Fatalf("ParseDuration(%q) = %v, want an error", s, got)
		}
		if got < 0 || got%time.Second != 0 || big.NewInt(int64(got)).Cmp(ref) != 0 {
			t.Fatalf("ParseDuration(%q) = %d, want %v", s, got, ref)
		}
		// The canonical forms round trip: whole seconds, and whole days.
		if back, err := keystore.ParseDuration(fmt.Sprintf("%ds", got/time.Second)); err != nil || back != got {
			t.Fatalf("ParseDuration(%ds) = %v, %v; want %v", got/time.Second, back, err, got)
		}
		if got%day == 0 {
			n := got / day
			if back, err := keystore.ParseDuration(fmt.Sprintf("%dd", n)); err != nil || back != time.Duration(n)*day {
				t.Fatalf("ParseDuration(%dd) = %v, %v; want %v", n, back, err, time.Duration(n)*day)
			}
		}
	})
}

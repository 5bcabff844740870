package keystore

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// strictDoc is a request body as the HTTP API reads them.
type strictDoc struct {
	Name     string            `json:"name"`
	Scopes   []string          `json:"scopes"`
	Expires  *string           `json:"expires_at"`
	Metadata map[string]string `json:"metadata"`
	Grace    int64             `json:"grace_seconds"`
}

func TestDecodeStrict(t *testing.T) {
	secret, _ := NewToken(EnvLive, nil)
	for in, want := range map[string]string{
		`{"name":"a","name":"b"}`:           `member "name" given twice`,
		`{"NAME":"a"}`:                      `unknown field "NAME"`,
		`{"ſcopes":["admin"]}`:              `unknown field "ſcopes"`,
		"{\"name\":\"\xff\"}":               "not valid UTF-8",
		`{"name":"\udc00"}`:                 "surrogate",
		`{"metadata":{"a":"1","a":"2"}}`:    `member "a" given twice in "/metadata"`,
		`{"` + secret + `":1}`:              "unknown field (a value shaped like a secret key, not shown)",
		`{"metadata":{"` + secret + `":1}}`: `field metadata must be an object of strings, not a number`,
		`{"name":"x"} {}`:                   "more than one JSON value",
		`[]`:                                "want a JSON object, got an array",
		`{"grace_seconds":"1h"}`:            "field grace_seconds must be a whole number, not a string",
		`{"name":`:                          "it ends too early",
		`{"name":"` + secret + `",}`:        "syntax error at byte",
	} {
		var d strictDoc
		err := DecodeStrict([]byte(in), &d)
		if err == nil || ErrorCode(err) != EINVALID || !strings.Contains(err.Error(), want) {
			t.Errorf("DecodeStrict(%.40q) = %v, want EINVALID with %q", in, err, want)
		} else if strings.Contains(err.Error(), secret[8:24]) {
			t.Errorf("DecodeStrict(%.40q) shows the secret: %v", in, err)
		}
	}
	var d strictDoc
	if err := DecodeStrict([]byte(`{"name":"a\u00e9","scopes":["bots:read"],"metadata":{"K":"v","k":"w"}}`), &d); err != nil || d.Name != "aé" || d.Metadata["K"] != "v" {
		t.Errorf("a plain document: %+v, %v", d, err)
	}
}

// What DecodeStrict accepts is valid UTF-8, and encoding/json, which is
// lenient, reads it the same; what it refuses gets a message that shows no
// secret.
func FuzzDecodeStrict(f *testing.F) {
	secret, _ := NewToken(EnvTest, nil)
	for _, s := range []string{
		`{"name":"x","scopes":["bots:read"],"metadata":{"a":"b"},"expires_at":null,"grace_seconds":5}`,
		`{"name":"a","name":"b"}`, `{"NAME":"a"}`, `{"ſcopes":[]}`, "{\"name\":\"\xff\"}", `{"name":"\ud800"}`,
		`{"` + secret + `":1}`, `{"metadata":{"` + secret + `":"` + secret + `"}}`, `[` + secret + `]`, `{"name":"x"}  `,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var strict strictDoc
		err := DecodeStrict(in, &strict)
		if err != nil {
			if LooksSecret(err.Error()) {
				t.Fatalf("message %q looks like it holds a secret", err)
			}
			if ErrorCode(err) != EINVALID {
				t.Fatalf("error %v is not EINVALID", err)
			}
			return
		}
		if !utf8.Valid(in) {
			t.Fatalf("accepted invalid UTF-8: %q", in)
		}
		var lenient strictDoc
		dec := json.NewDecoder(bytes.NewReader(in))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&lenient); err != nil {
			t.Fatalf("accepted %q, which encoding/json refuses: %v", in, err)
		}
		if !reflect.DeepEqual(strict, lenient) {
			t.Fatalf("%q: strict %+v, encoding/json %+v", in, strict, lenient)
		}
	})
}

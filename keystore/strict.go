// DecodeStrict decodes the JSON that keyctl takes from outside (the HTTP
// API's request bodies, import records) strictly: member names exactly
// as the Go type names them, each at most once, unknown members refused,
// valid UTF-8 only (escaped lone surrogates included), one value and
// nothing after it. An ambiguous document (`{"key":A,"KEY":B}`, `ſcopes`
// for scopes) is an error, never read one way here and another elsewhere.
// Its errors never repeat a value, and repeat a member name only through
// Quote.
package keystore

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// JSONValue is a raw JSON value kept for decoding later, such as each
// record of an import request.
type JSONValue = jsontext.Value

// strict are the options of every decoding: v2's defaults (exact names, no
// duplicates, valid UTF-8) and no unknown members.
var strict = json.JoinOptions(json.DefaultOptionsV2(), json.RejectUnknownMembers(true))

// DecodeStrict decodes data into v strictly. Its error is an *Error
// (EINVALID) that says what is wrong and where, without a value of the
// input.
func DecodeStrict(data []byte, v any) error {
	if err := json.Unmarshal(data, v, strict); err != nil {
		return Errorf(EINVALID, "%s", DescribeJSONError(err))
	}
	return nil
}

// jsonKinds says what the value of each member of keyctl's documents must
// be, for messages.
var jsonKinds = map[string]string{
	"name":          "a string",
	"scopes":        "a list of strings",
	"environment":   "a string",
	"expires_at":    "an RFC 3339 time string",
	"created_at":    "an RFC 3339 time string",
	"metadata":      "an object of strings",
	"grace_seconds": "a whole number",
	"key":           "a string",
	"key_sha256":    "a string",
	"hint":          "a string",
	"keys":          "a list of import records",
}

// DescribeJSONError says what is wrong in a document that DecodeStrict
// refused, in words for a message, never quoting a value and quoting a
// member name only through Quote.
func DescribeJSONError(err error) string {
	var (
		syn *jsontext.SyntacticError
		sem *json.SemanticError
	)
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return "malformed JSON: it ends too early"
	case errors.As(err, &syn):
		where := fmt.Sprintf("at byte %d", syn.ByteOffset)
		switch {
		case errors.Is(syn.Err, jsontext.ErrDuplicateName):
			return "malformed JSON: member " + Quote(syn.JSONPointer.LastToken()) + " given twice" + parentOf(syn.JSONPointer)
		case syn.Err != nil && strings.Contains(syn.Err.Error(), "invalid UTF-8"):
			return "malformed JSON: not valid UTF-8 " + where
		case syn.Err != nil && strings.Contains(syn.Err.Error(), "surrogate"):
			return "malformed JSON: invalid UTF-16 surrogate in a string escape " + where
		case syn.Err != nil && strings.Contains(syn.Err.Error(), "after top-level value"):
			return "malformed JSON: more than one JSON value"
		}
		return "malformed JSON: syntax error " + where + ": " + syntaxWhy(syn.Err)
	case errors.As(err, &sem):
		name := sem.JSONPointer.LastToken()
		switch {
		case errors.Is(sem.Err, json.ErrUnknownName):
			return "unknown field " + Quote(name) + parentOf(sem.JSONPointer)
		case sem.JSONPointer == "":
			return "malformed JSON: want a JSON object, got " + kindName(sem.JSONKind)
		}
		field := firstField(sem.JSONPointer)
		kind, ok := jsonKinds[field]
		if !ok {
			return fmt.Sprintf("field %s must be of another type, not %s", Quote(field), kindName(sem.JSONKind))
		}
		return fmt.Sprintf("field %s must be %s, not %s", field, kind, kindName(sem.JSONKind))
	}
	return "malformed JSON"
}

// firstField is the first member name of a pointer that is a name: the
// field of a record, for /keys/3/name the name.
func firstField(p jsontext.Pointer) string {
	last := ""
	for tok := range p.Tokens() {
		if tok != "" && strings.Trim(tok, "0123456789") == "" {
			continue
		}
		last = tok
		if _, ok := jsonKinds[tok]; ok {
			return tok
		}
	}
	return last
}

// parentOf says where a member is, when it is not at the top.
func parentOf(p jsontext.Pointer) string {
	parent := p.Parent()
	if parent == "" {
		return ""
	}
	return " in " + Quote(string(parent))
}

// syntaxWhy is the reason of a syntax error, such as "invalid character
// ',' at start of value": it quotes one character of the input at most.
func syntaxWhy(err error) string {
	if err == nil {
		return "syntax error"
	}
	msg, _, _ := strings.Cut(err.Error(), "`")
	return Truncate(RedactSecrets(msg), 100)
}

func kindName(k jsontext.Kind) string {
	switch k {
	case 'n':
		return "null"
	case 'f', 't':
		return "a boolean"
	case '"':
		return "a string"
	case '0':
		return "a number"
	case '{':
		return "an object"
	case '[':
		return "an array"
	}
	return "another kind of value"
}

package output

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	"github.com/itchyny/gojq"
)

// Formats accepted by -o.
const (
	FormatTable = "table"
	FormatJSON  = "json"
	FormatJSONL = "jsonl"
)

// Formats lists the values of -o, for help and completion.
var Formats = []string{FormatTable, FormatJSON, FormatJSONL}

// ValidFormat reports whether f is a value of -o.
func ValidFormat(f string) bool { return f == FormatTable || f == FormatJSON || f == FormatJSONL }

// JQ is a compiled --jq filter.
type JQ struct{ code *gojq.Code }

// ParseJQ compiles a jq expression; the error is one line for the user.
func ParseJQ(expr string) (*JQ, error) {
	q, err := gojq.Parse(expr)
	if err != nil {
		return nil, fmt.Errorf("invalid --jq expression: %v", err)
	}
	code, err := gojq.Compile(q)
	if err != nil {
		return nil, fmt.Errorf("invalid --jq expression: %v", err)
	}
	return &JQ{code: code}, nil
}

// WriteJSON writes v as indented JSON, or, with a filter, the filter's
// results one per line (strings raw, as jq -r does).
func WriteJSON(w io.Writer, v any, jq *JQ) error {
	if jq != nil {
		return jq.run(w, v)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// WriteJSONLine writes v as one compact line, or the filter's results.
func WriteJSONLine(w io.Writer, v any, jq *JQ) error {
	if jq != nil {
		return jq.run(w, v)
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

func (q *JQ) run(w io.Writer, v any) error {
	// gojq works on generic JSON values only.
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var generic any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&generic); err != nil {
		return err
	}
	generic = numbersToFloat(generic)
	iter := q.code.Run(generic)
	for {
		out, ok := iter.Next()
		if !ok {
			return nil
		}
		if err, ok := out.(error); ok {
			return fmt.Errorf("--jq: %v", err)
		}
		if s, ok := out.(string); ok {
			if _, err := fmt.Fprintln(w, s); err != nil {
				return err
			}
			continue
		}
		line, err := gojq.Marshal(out)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(w, "%s\n", line); err != nil {
			return err
		}
	}
}

func numbersToFloat(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return int(i)
		}
		f, _ := x.Float64()
		return f
	case []any:
		for i := range x {
			x[i] = numbersToFloat(x[i])
		}
	case map[string]any:
		for k := range x {
			x[k] = numbersToFloat(x[k])
		}
	}
	return v
}

package output

// Colorize wraps text in the ANSI color of a status word when color is on.
func (s *IOStreams) Colorize(status, text string) string {
	if !s.color {
		return text
	}
	code := ""
	switch status {
	case "active", "valid":
		code = "32" // green
	case "expired", "insufficient_scope", "disabled":
		code = "33" // yellow
	case "revoked", "not_found", "invalid_format":
		code = "31" // red
	default:
		return text
	}
	return "\x1b[" + code + "m" + text + "\x1b[0m"
}

// Bold emphasises text when color is on.
func (s *IOStreams) Bold(text string) string {
	if !s.color {
		return text
	}
	return "\x1b[1m" + text + "\x1b[0m"
}

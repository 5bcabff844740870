// Package output holds what keyctl writes: the IO streams with their
// terminal and color state, tables, relative times, and JSON, JSONL or a jq
// filter of it.
package output

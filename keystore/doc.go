// Package keystore is the domain of keyctl: API keys, their scopes and token
// format, the Store interface every backend implements, and the typed errors
// that commands and the HTTP API share.
package keystore

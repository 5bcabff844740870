package keystore

// ChecksumForTest exposes checksum to the external tests.
var ChecksumForTest = checksum

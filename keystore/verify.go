package keystore

import "time"

// Judge decides the verification result for a secret whose format is valid
// and that belongs to k (nil: no key has that secret), at time now, for the
// required scopes. Stores share it so that every store answers alike.
func Judge(k *Key, now time.Time, required []string) *Verification {
	v := new(Verification)
	JudgeInto(v, k, now, required)
	return v
}

// JudgeInto is Judge writing into v, for a hot path that allocates nothing.
func JudgeInto(v *Verification, k *Key, now time.Time, required []string) {
	*v = Verification{Key: k, MissingScopes: []string{}}
	if k == nil {
		v.Code = CodeNotFound
		return
	}
	switch k.StatusAt(now) {
	case StatusRevoked:
		v.Code = CodeRevoked
	case StatusExpired:
		v.Code = CodeExpired
	case StatusDisabled:
		v.Code = CodeDisabled
	default:
		v.MissingScopes = MissingScopes(k.Scopes, required)
		if len(v.MissingScopes) > 0 {
			v.Code = CodeInsufficientScope
		} else {
			v.Code, v.Valid = CodeValid, true
		}
	}
}

// InvalidFormat is the verification result for a secret that fails ParseToken.
func InvalidFormat() *Verification {
	return &Verification{Code: CodeInvalidFormat, MissingScopes: []string{}}
}

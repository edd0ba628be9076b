package ambient

import "time"

// CertWarnLimit is the longest warning window before a certificate expires.
const CertWarnLimit = 24 * time.Hour

// CertStatus is where a certificate stands against the expiry rule.
type CertStatus int

// Certificate statuses.
const (
	// CertValid has more than its warning window left (or no expiry).
	CertValid CertStatus = iota
	// CertExpiring has less than its warning window left.
	CertExpiring
	// CertExpired is past its expiration.
	CertExpired
)

// CertWarnWindow is how close to expiry a certificate may get before it is
// reported: limit (CertWarnLimit by default), but never more than half the
// certificate's lifetime. Istio's workload certificates live 24 h and are
// renewed at half-life, so a healthy one always has under a day left; it is
// late only once less than half its lifetime remains. A nil validFrom means
// the lifetime is unknown and the window is limit.
func CertWarnWindow(validFrom, expiration *time.Time, limit time.Duration) time.Duration {
	if validFrom != nil && expiration != nil {
		if half := expiration.Sub(*validFrom) / 2; half > 0 && half < limit {
			return half
		}
	}
	return limit
}

// CertExpiry applies the expiry rule at now: expired, expiring within
// CertWarnWindow, or valid. A nil expiration is valid.
func CertExpiry(validFrom, expiration *time.Time, now time.Time, limit time.Duration) CertStatus {
	switch {
	case expiration == nil:
		return CertValid
	case !expiration.After(now):
		return CertExpired
	case expiration.Sub(now) < CertWarnWindow(validFrom, expiration, limit):
		return CertExpiring
	}
	return CertValid
}

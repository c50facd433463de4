package registryext

// SetReferrersPage bounds the pages of the referrers API to maxBytes and
// maxCount descriptors (zero: the defaults). Call it before Start.
func SetReferrersPage(s *Server, maxBytes int64, maxCount int) {
	s.referrers.pageBytes = maxBytes
	s.referrers.pageCount = maxCount
}

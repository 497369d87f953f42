package csi

// size is the number of keys locked or waited for.
func (l *keyLocks) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.held)
}

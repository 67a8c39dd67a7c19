# apt_get: apt-get that waits (up to 10 minutes) for another apt or dpkg run to let go
# of its lock, instead of failing at once: a fresh machine often runs its own updates
# when CI starts. Sourced by scripts/test.sh; tests/test_newuser.py holds the lock to
# check it.
apt_get() {
    apt-get -o DPkg::Lock::Timeout=600 "$@"
}

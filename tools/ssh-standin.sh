#!/bin/sh
# A stand-in for N real machines on this one, for `raftcheck run --hosts`: each "host" is a
# network namespace with its own address on a bridge and its own sshd (Debian's
# openssh-server), reached with a key made for it. raftcheck only ever talks to them over
# SSH. Needs root, ip, iptables, ssh-keygen and /usr/sbin/sshd.
#
#   tools/ssh-standin.sh up TAG N OCTET OUT   # hosts 10.232.OCTET.11 .. ; writes OUT/hosts.toml
#   tools/ssh-standin.sh down TAG OUT         # stops the sshds, deletes namespaces and bridge
#
# TAG is 1-4 of [a-z0-9] and names everything made here (namespaces ssb-TAG-hK, bridge
# ssb-TAG, an iptables rule commented ssh-standin:TAG), so two stand-ins never collide and
# down removes exactly its own. The hosts share this machine's file system, so the hosts file
# gives them one dir (OUT/fs) that a test can check is empty after a run.
set -eu
cmd=${1:-}
case "$cmd" in
up)
    tag=$2 n=$3 octet=$4 out=$5
    case "$tag" in *[!a-z0-9]*|'') echo "bad tag $tag" >&2; exit 2;; esac
    [ "${#tag}" -le 4 ] || { echo "tag too long" >&2; exit 2; }
    mkdir -p "$out" "$out/fs" /run/sshd
    out=$(cd "$out" && pwd)
    br="ssb-$tag"
    ssh-keygen -q -t ed25519 -N '' -f "$out/id_ed25519" -C "raftcheck-standin-$tag" </dev/null
    ssh-keygen -q -t ed25519 -N '' -f "$out/host_key" -C "standin-host-$tag" </dev/null
    cp "$out/id_ed25519.pub" "$out/authorized_keys"
    chmod 600 "$out/authorized_keys"
    : > "$out/known_hosts"
    ip link add "$br" type bridge
    ip addr add "10.232.$octet.1/24" dev "$br"
    ip link set "$br" up
    iptables -w 10 -A FORWARD -i "$br" -o "$br" -j ACCEPT -m comment --comment "ssh-standin:$tag"
    {
        echo "# written by tools/ssh-standin.sh up $tag"
        echo "user = \"root\""
        echo "key = \"$out/id_ed25519\""
        echo "known_hosts = \"$out/known_hosts\""
        echo "host_key_check = \"strict\""
        echo "dir = \"$out/fs\""
    } > "$out/hosts.toml"
    i=1
    while [ "$i" -le "$n" ]; do
        ns="ssb-$tag-h$i" addr="10.232.$octet.$((10 + i))"
        ip netns add "$ns"
        ip link add "ssb$tag$i" type veth peer name "ssp$tag$i"
        ip link set "ssp$tag$i" netns "$ns"
        ip link set "ssb$tag$i" master "$br" up
        ip -n "$ns" link set "ssp$tag$i" name eth0
        ip -n "$ns" addr add "$addr/24" dev eth0
        ip -n "$ns" link set eth0 up
        ip -n "$ns" link set lo up
        cat > "$out/sshd_config.h$i" <<CONF
ListenAddress $addr
Port 22
HostKey $out/host_key
AuthorizedKeysFile $out/authorized_keys
PidFile $out/sshd.h$i.pid
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
AcceptEnv none
MaxSessions 100
MaxStartups 100
CONF
        ip netns exec "$ns" /usr/sbin/sshd -f "$out/sshd_config.h$i" -E "$out/sshd.h$i.log"
        echo "$addr $(cut -d' ' -f1,2 "$out/host_key.pub")" >> "$out/known_hosts"
        printf '\n[[host]]\naddress = "%s"\n' "$addr" >> "$out/hosts.toml"
        i=$((i + 1))
    done
    # Each sshd is listening once it answers.
    i=1
    while [ "$i" -le "$n" ]; do
        addr="10.232.$octet.$((10 + i))" t=0
        until ssh -o BatchMode=yes -o UserKnownHostsFile="$out/known_hosts" -i "$out/id_ed25519" \
            -o ConnectTimeout=2 "root@$addr" true 2>/dev/null; do
            t=$((t + 1)); [ "$t" -lt 50 ] || { echo "sshd on $addr did not answer" >&2; exit 1; }
            sleep 0.1
        done
        i=$((i + 1))
    done
    echo "$out/hosts.toml"
    ;;
down)
    tag=$2 out=$3
    for pidfile in "$out"/sshd.h*.pid; do
        [ -e "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
    done
    # The root ends of the veths first: deleting one deletes its pair at once, where a
    # namespace's own teardown would do it later, asynchronously.
    for l in $(ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | grep "^ssb$tag[0-9]*$" || true); do
        ip link delete "$l" 2>/dev/null || true
    done
    for ns in $(ip netns list | awk '{print $1}' | grep "^ssb-$tag-h" || true); do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
        ip netns delete "$ns" || true
    done
    ip link show "ssb-$tag" >/dev/null 2>&1 && ip link delete "ssb-$tag" || true
    while iptables -w 10 -D FORWARD -i "ssb-$tag" -o "ssb-$tag" -j ACCEPT \
        -m comment --comment "ssh-standin:$tag" 2>/dev/null; do :; done
    ;;
*)
    echo "usage: $0 up TAG N OCTET OUT | down TAG OUT" >&2
    exit 2
    ;;
esac

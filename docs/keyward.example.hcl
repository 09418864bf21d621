# An example keyward configuration. Vault's syntax: storage, seal and listener blocks.

storage "file" {
  path = "/var/lib/keyward/storage"
}

seal "pkcs11" {
  lib          = "/usr/lib/softhsm/libsofthsm2.so"  # your HSM vendor's PKCS#11 module
  token_label  = "keyward"                          # or: slot = 1234
  key_label    = "keyward-seal"                     # the AES-256 seal key inside the token
  generate_key = true                               # create it at init if it does not exist
  # mechanism = "0x1087"  # as in Vault: accepted when it names AES-GCM (CKM_AES_GCM), refused otherwise
  # library_parameters = "configdir='sql:/var/lib/keyward/nss' certPrefix='' keyPrefix='' secmod='secmod.db' flags="
  #                     # given to C_Initialize (NSS softokn needs its database this way); or KEYWARD_HSM_LIBRARY_PARAMETERS
  # max_parallel = 32   # PKCS#11 calls in flight on a pool of sessions (docs/HSM.md); unset: decided
  #                     # at startup by a measured round trip; 0: always on the event loop
  # iv_policy = "token" # who picks AES-GCM IVs: "caller" (keyward) or "token" (FIPS-mode HSMs that
  #                     # refuse a caller's IV); unset: a probe at the first encryption decides
  # pin: better from the environment, KEYWARD_HSM_PIN (VAULT_HSM_PIN also works)
}

listener "tcp" {
  address       = "127.0.0.1:8200"
  tls_cert_file = "/etc/keyward/tls.crt"
  tls_key_file  = "/etc/keyward/tls.key"
  # tls_disable = true   # only on loopback, for trying things out

  # How long a client may take, and how many may be connected at once.
  http_read_header_timeout = "10s"
  http_read_timeout        = "30s"   # the whole request, body included
  http_idle_timeout        = "5m"    # between requests on a kept-alive connection
  max_connections          = 512
}

log_level = "info"

# Several nodes on one PostgreSQL database (docs/HA.md): replace the storage block above with
#
# storage "postgresql" {
#   connection_url        = "postgres://keyward@db.internal/keyward"  # or KEYWARD_PG_CONNECTION_URL
#   table                 = "keyward_kv_store"
#   max_parallel          = 10
#   ha_enabled            = "true"
#   lock_ttl              = "15s"
#   upgrade_grace_period  = "2m"
#   upgrade_poll_interval = "10s"
# }
#
# node_id          = "kw-1"                        # default: host name and port
# api_addr         = "https://kw-1.internal:8200"  # how the others reach this node
# standby_requests = "forward"                     # or "redirect" (307 to the active node)

# How often automatic rotation is considered, and how often encryption counts are persisted.
rotation_check_interval           = "10s"
encryption_count_persist_interval = "5s"

# Token lifetimes: the TTL a token gets when it asks for none, and the most any non-root token gets.
default_lease_ttl = "768h"
max_lease_ttl     = "768h"

"""The everyday Vault calls of an application team and an operator, made with Debian's python3-hvac (0.11) against keyward.

Usage: VAULT_ADDR=https://... VAULT_TOKEN=<root> VAULT_CACERT=<ca.pem> UNSEAL_KEYS=<json list> CLIENT_CERT=... CLIENT_KEY=...
       CLIENT_CA_PEM=... JWT_PUBKEY_PEM=... JWT_TOKEN=... AUDIT_FILE=... python3 hvac_compat.py [--list]

Runs every call in order, each caught on its own, and prints one JSON line per call:
{"name", "group", "expect", "ok", "status", "message"}. A call expected to work is ok when it answered and a check of
its result held; a call expected to be refused is ok when keyward answered 4xx with a message naming what it does not
offer. With --list, prints the calls without running them (for docs/COMPATIBILITY.md).
"""
import json
import os
import re
import sys
import time

import hvac
import requests

ADDR = os.environ.get("VAULT_ADDR", "")
ROOT = os.environ.get("VAULT_TOKEN", "")
CA = os.environ.get("VAULT_CACERT") or True
TIMEOUT = 15

# What a clear refusal says: keyward's wording for an area or option it does not offer.
REFUSAL = re.compile(r"does not offer|not offered|not supported|keyward offers|this server offers", re.I)

CALLS = []
state = {"keys": json.loads(os.environ.get("UNSEAL_KEYS", "[]"))}
last = {"status": None}


def remember_status(response, *args, **kwargs):
    last["status"] = response.status_code


def client(token=ROOT, **kwargs):
    """A client as an application makes one: hvac's defaults (lists with the LIST method), the server's CA."""
    c = hvac.Client(url=ADDR, token=token, verify=CA, timeout=TIMEOUT, **kwargs)
    c.session.hooks["response"].append(remember_status)
    return c


root = client()


def call(group, expect="works", pattern=None):
    """Registers the decorated function as one call: `expect` is "works" or "refused" (with the refusal's `pattern`)."""

    def register(fn):
        CALLS.append({"name": fn.__name__, "group": group, "expect": expect, "pattern": pattern, "run": fn, "doc": (fn.__doc__ or "").strip()})
        return fn

    return register


def check(condition, what):
    if not condition:
        raise AssertionError(what)


def refused_status(err):
    return {hvac.exceptions.InvalidRequest: 400, hvac.exceptions.Unauthorized: 401, hvac.exceptions.Forbidden: 403, hvac.exceptions.InvalidPath: 404}.get(type(err))


def data(reply):
    return reply["data"]


def gone(fn):
    """Whether fn raises hvac's 404 (or hvac's None for a missing path)."""
    try:
        return fn() is None
    except hvac.exceptions.InvalidPath:
        return True


def raises(fn, exc=hvac.exceptions.VaultError):
    try:
        fn()
    except exc:
        return True
    return False


def key_term():
    status = root.sys.get_encryption_key_status()
    return status.get("data", status)["term"]


# --- status: what a health check and an operator's first look call ---------------------------------------------------


@call("status")
def sys_is_initialized():
    check(root.sys.is_initialized() is True, "not initialized")


@call("status")
def sys_read_init_status():
    check(root.sys.read_init_status() == {"initialized": True}, "initialized is not true")


@call("status")
def sys_read_seal_status():
    s = root.sys.read_seal_status()
    check(s["sealed"] is False and s["t"] == 2 and s["n"] == 3, f"unexpected seal status {s}")


@call("status")
def sys_read_health_status():
    h = root.sys.read_health_status(method="GET")
    check(h["initialized"] and not h["sealed"] and not h["standby"], f"unexpected health {h}")


@call("status")
def sys_read_leader_status():
    check("ha_enabled" in root.sys.read_leader_status(), "no ha_enabled")


@call("status")
def sys_get_encryption_key_status():
    state["term"] = key_term()
    check(state["term"] >= 1, "term below 1")


# --- seal, unseal, rotate, rekey, root generation: an operator's runbook --------------------------------------------------


@call("operator")
def sys_seal():
    root.sys.seal()
    check(root.sys.is_sealed() is True, "still unsealed")


@call("operator")
def sys_submit_unseal_key():
    s = root.sys.submit_unseal_key(key=state["keys"][0])
    check(s["sealed"] is True and s["progress"] == 1, f"unexpected progress {s}")


@call("operator")
def sys_submit_unseal_keys():
    root.sys.submit_unseal_key(reset=True)
    s = root.sys.submit_unseal_keys(keys=state["keys"][:2])
    check(s["sealed"] is False, "still sealed")


@call("operator")
def sys_rotate_encryption_key():
    root.sys.rotate_encryption_key()
    term = key_term()
    check(term == state["term"] + 1, f"term {term} after rotating term {state['term']}")


@call("operator")
def sys_read_rekey_progress():
    check(root.sys.read_rekey_progress()["started"] is False, "a rekey is already started")


@call("operator")
def sys_start_rekey():
    s = root.sys.start_rekey(secret_shares=3, secret_threshold=2)
    state["rekey_nonce"] = s["nonce"]
    check(s["started"] and s["n"] == 3 and s["t"] == 2 and s["nonce"], f"unexpected rekey {s}")


@call("operator")
def sys_cancel_rekey():
    root.sys.cancel_rekey()
    check(root.sys.read_rekey_progress()["started"] is False, "still started")


@call("operator")
def sys_rekey_multi():
    nonce = root.sys.start_rekey(secret_shares=3, secret_threshold=2)["nonce"]
    done = root.sys.rekey_multi(keys=state["keys"][:2], nonce=nonce)
    check(done["complete"] and len(done["keys"]) == 3, f"rekey not complete: {done}")
    state["keys"] = done["keys"]


@call("operator")
def sys_read_root_generation_progress():
    check(root.sys.read_root_generation_progress()["started"] is False, "a root generation is already started")


@call("operator")
def sys_start_root_token_generation():
    s = root.sys.start_root_token_generation()
    check(s["started"] and s["nonce"] and len(s.get("otp", "")) == s["otp_length"], f"unexpected start {s}")


@call("operator")
def sys_cancel_root_generation():
    root.sys.cancel_root_generation()
    check(root.sys.read_root_generation_progress()["started"] is False, "still started")


# --- secrets engines: mounting what the application uses ---------------------------------------------------------------


@call("mounts")
def sys_enable_secrets_engine_kv_v2():
    root.sys.enable_secrets_engine("kv", path="kv", options={"version": "2"})
    check(root.sys.list_mounted_secrets_engines()["kv/"]["options"]["version"] == "2", "kv/ is not version 2")


@call("mounts")
def sys_enable_secrets_engine_kv_v1():
    root.sys.enable_secrets_engine("kv", path="kv1", description="kv version 1")
    check(root.sys.read_mount_configuration("kv1") is not None, "kv1/ not mounted")


@call("mounts")
def sys_enable_secrets_engine_transit():
    root.sys.enable_secrets_engine("transit")
    check(root.sys.list_mounted_secrets_engines()["transit/"]["type"] == "transit", "transit/ not mounted")


@call("mounts")
def sys_list_mounted_secrets_engines():
    mounts = root.sys.list_mounted_secrets_engines()
    check({"kv/", "kv1/", "transit/"} <= set(mounts["data"] if "data" in mounts else mounts), "mounts missing")


@call("mounts")
def sys_read_mount_configuration():
    c = root.sys.read_mount_configuration("kv")
    c = c.get("data", c)
    check("default_lease_ttl" in c and "max_lease_ttl" in c, f"unexpected config {c}")


@call("mounts")
def sys_tune_mount_configuration():
    root.sys.tune_mount_configuration("kv", default_lease_ttl="1h", max_lease_ttl="24h", description="team secrets")
    c = root.sys.read_mount_configuration("kv")
    c = c.get("data", c)
    check(c["default_lease_ttl"] == 3600 and c["max_lease_ttl"] == 86400, f"tune not applied: {c}")


@call("mounts")
def sys_tune_mount_configuration_kv_upgrade():
    """options.version=2 upgrades a KV v1 mount in place, keeping its data."""
    root.sys.enable_secrets_engine("kv", path="kv-upgrade")
    root.write("kv-upgrade/keep", value="kept")
    root.sys.tune_mount_configuration("kv-upgrade", options={"version": "2"})
    check(root.secrets.kv.v2.read_secret_version("keep", mount_point="kv-upgrade")["data"]["data"] == {"value": "kept"}, "not upgraded")


@call("mounts")
def sys_move_backend():
    root.sys.move_backend("kv-upgrade", "kv-moved")
    check(root.secrets.kv.v2.read_secret_version("keep", mount_point="kv-moved")["data"]["data"] == {"value": "kept"}, "data not moved")


@call("mounts")
def sys_disable_secrets_engine():
    root.sys.disable_secrets_engine("kv-moved")
    mounts = root.sys.list_mounted_secrets_engines()
    check("kv-moved/" not in mounts.get("data", mounts), "still mounted")


@call("mounts", "refused", r"pki")
def sys_enable_secrets_engine_pki():
    """PKI is not a keyward engine (keyward offers kv and transit)."""
    root.sys.enable_secrets_engine("pki")


# --- auth methods: how workloads and people get tokens ---------------------------------------------------------------


@call("auth-methods")
def sys_enable_auth_method_approle():
    root.sys.enable_auth_method("approle")
    check("approle/" in root.sys.list_auth_methods()["data"], "approle/ not listed")


@call("auth-methods")
def sys_enable_auth_method_userpass():
    root.sys.enable_auth_method("userpass")
    check(root.sys.list_auth_methods()["data"]["userpass/"]["type"] == "userpass", "userpass/ not listed")


@call("auth-methods")
def sys_enable_auth_method_cert():
    root.sys.enable_auth_method("cert")
    check(root.sys.list_auth_methods()["data"]["cert/"]["type"] == "cert", "cert/ not listed")


@call("auth-methods")
def sys_enable_auth_method_jwt():
    root.sys.enable_auth_method("jwt")
    check(root.sys.list_auth_methods()["data"]["jwt/"]["type"] == "jwt", "jwt/ not listed")


@call("auth-methods")
def sys_list_auth_methods():
    methods = root.sys.list_auth_methods()["data"]
    check(methods["token/"]["type"] == "token" and "accessor" in methods["approle/"], f"unexpected list {sorted(methods)}")


@call("auth-methods")
def sys_read_auth_method_tuning():
    t = root.sys.read_auth_method_tuning("approle")["data"]
    check("default_lease_ttl" in t and "max_lease_ttl" in t, f"unexpected tuning {t}")


@call("auth-methods")
def sys_tune_auth_method():
    root.sys.tune_auth_method("approle", default_lease_ttl="30m", max_lease_ttl="2h")
    t = root.sys.read_auth_method_tuning("approle")["data"]
    check(t["default_lease_ttl"] == 1800 and t["max_lease_ttl"] == 7200, f"tune not applied: {t}")


@call("auth-methods")
def sys_disable_auth_method():
    root.sys.enable_auth_method("userpass", path="people-tmp")
    root.sys.disable_auth_method("people-tmp")
    check("people-tmp/" not in root.sys.list_auth_methods()["data"], "still enabled")


@call("auth-methods", "refused", r"ldap")
def sys_enable_auth_method_ldap():
    """LDAP is not a keyward auth method (approle, userpass, cert and jwt are)."""
    root.sys.enable_auth_method("ldap")


# --- policies: sys/policy (hvac) and sys/policies/acl (Vault's current API) --------------------------------------------

APP_POLICY = 'path "kv/data/app/*" { capabilities = ["create", "read", "update", "patch", "list"] }\npath "kv/metadata/*" { capabilities = ["list", "read"] }\npath "kv1/*" { capabilities = ["read", "list"] }\npath "transit/encrypt/app" { capabilities = ["update"] }\n'


@call("policies")
def sys_create_or_update_policy():
    root.sys.create_or_update_policy("app", APP_POLICY)
    check("kv/data/app/*" in root.sys.read_policy("app")["data"]["rules"], "policy not stored")


@call("policies")
def sys_read_policy():
    check(root.sys.read_policy("app")["data"]["name"] == "app", "wrong name")


@call("policies")
def sys_list_policies():
    check({"root", "default", "app"} <= set(root.sys.list_policies()["data"]["policies"]), "policies missing")


@call("policies")
def sys_delete_policy():
    root.sys.create_or_update_policy("doomed", 'path "x/*" { capabilities = ["read"] }')
    root.sys.delete_policy("doomed")
    check(gone(lambda: root.sys.read_policy("doomed")), "still there")


@call("policies")
def write_sys_policies_acl():
    root.write("sys/policies/acl/ops", policy='path "sys/mounts" { capabilities = ["read"] }')
    check("sys/mounts" in root.read("sys/policies/acl/ops")["data"]["policy"], "not stored")


@call("policies")
def read_sys_policies_acl():
    check(root.read("sys/policies/acl/ops")["data"]["name"] == "ops", "wrong name")


@call("policies")
def list_sys_policies_acl():
    check("ops" in root.list("sys/policies/acl")["data"]["keys"], "not listed")


@call("policies")
def delete_sys_policies_acl():
    root.delete("sys/policies/acl/ops")
    check(root.read("sys/policies/acl/ops") is None, "still there")


# --- audit ---------------------------------------------------------------------------------------------------------------


@call("audit")
def sys_enable_audit_device():
    root.sys.enable_audit_device("file", options={"file_path": os.environ.get("AUDIT_FILE", "/dev/null")})
    check("file/" in root.sys.list_enabled_audit_devices()["data"], "not enabled")


@call("audit")
def sys_list_enabled_audit_devices():
    check(root.sys.list_enabled_audit_devices()["data"]["file/"]["type"] == "file", "file/ not listed")


@call("audit")
def sys_calculate_hash():
    """How an operator finds a token or secret in the audit log, which holds only HMACs."""
    check(root.sys.calculate_hash("file", "a token")["data"]["hash"].startswith("hmac-sha256:"), "no hmac")


@call("audit")
def sys_disable_audit_device():
    root.sys.disable_audit_device("file")
    check("file/" not in root.sys.list_enabled_audit_devices()["data"], "still enabled")


# --- capabilities ----------------------------------------------------------------------------------------------------------


@call("capabilities")
def sys_get_capabilities_self():
    check(root.sys.get_capabilities(paths=["kv/data/app/x"])["capabilities"] == ["root"], "root is not root")


@call("capabilities")
def sys_get_capabilities_token():
    t = root.auth.token.create(policies=["app"], ttl="1h")["auth"]["client_token"]
    caps = root.sys.get_capabilities(paths=["kv/data/app/x"], token=t)["capabilities"]
    check(set(caps) == {"create", "read", "update", "patch", "list"}, f"unexpected capabilities {caps}")


@call("capabilities")
def sys_get_capabilities_accessor():
    auth = root.auth.token.create(policies=["app"], ttl="1h")["auth"]
    caps = root.sys.get_capabilities(paths=["kv1/app"], accessor=auth["accessor"])["capabilities"]
    check(set(caps) == {"read", "list"}, f"unexpected capabilities {caps}")


# --- tokens: auth/token ---------------------------------------------------------------------------------------------------


@call("tokens")
def token_create():
    auth = root.auth.token.create(policies=["app"], ttl="1h", meta={"team": "payments"})["auth"]
    state["app_token"], state["app_accessor"] = auth["client_token"], auth["accessor"]
    check(auth["policies"] == ["app", "default"] and auth["lease_duration"] == 3600, f"unexpected auth {auth}")


@call("tokens")
def token_create_orphan():
    auth = root.auth.token.create(policies=["app"], no_parent=True)["auth"]
    check(auth["orphan"] is True, f"not an orphan: {auth}")


@call("tokens")
def token_create_periodic():
    auth = root.auth.token.create(policies=["app"], period="2h")["auth"]
    check(data(root.auth.token.lookup(auth["client_token"]))["period"] == 7200, "no period")


@call("tokens")
def token_create_or_update_role():
    root.auth.token.create_or_update_role("ci", allowed_policies=["app"], orphan=True)
    check(data(root.auth.token.read_role("ci"))["allowed_policies"] == ["app"], "role not stored")


@call("tokens")
def token_read_role():
    check(data(root.auth.token.read_role("ci"))["orphan"] is True, "not an orphan role")


@call("tokens")
def token_list_roles():
    check("ci" in data(root.auth.token.list_roles())["keys"], "role not listed")


@call("tokens")
def token_create_with_role():
    auth = root.auth.token.create(role_name="ci", policies=["app"])["auth"]
    check(auth["orphan"] is True and "app" in auth["policies"], f"role not applied: {auth}")


@call("tokens")
def token_delete_role():
    root.auth.token.create_or_update_role("doomed-role", allowed_policies=["app"])
    root.auth.token.delete_role("doomed-role")
    check(gone(lambda: root.auth.token.read_role("doomed-role")), "role still there")


@call("tokens")
def token_lookup():
    d = data(root.auth.token.lookup(state["app_token"]))
    check(d["policies"] == ["app", "default"] and d["meta"] == {"team": "payments"}, f"unexpected lookup {d}")


@call("tokens")
def token_lookup_self():
    check(data(root.auth.token.lookup_self())["policies"] == ["root"], "not root")


@call("tokens")
def token_lookup_accessor():
    d = data(root.auth.token.lookup_accessor(state["app_accessor"]))
    check(d["accessor"] == state["app_accessor"] and d["id"] == "", f"unexpected lookup {d}")


@call("tokens")
def token_list_accessors():
    check(state["app_accessor"] in data(root.auth.token.list_accessors())["keys"], "accessor not listed")


@call("tokens")
def token_renew():
    auth = root.auth.token.renew(state["app_token"], increment="2h")["auth"]
    check(auth["lease_duration"] == 7200, f"unexpected renewal {auth}")


@call("tokens")
def token_renew_self():
    app = client(state["app_token"])
    check(app.auth.token.renew_self(increment="30m")["auth"]["lease_duration"] == 1800, "not renewed")


@call("tokens")
def token_revoke():
    t = root.auth.token.create(policies=["app"])["auth"]["client_token"]
    root.auth.token.revoke(t)
    check(raises(lambda: root.auth.token.lookup(t)), "still valid")


@call("tokens")
def token_revoke_self():
    t = root.auth.token.create(policies=["app"])["auth"]["client_token"]
    client(t).auth.token.revoke_self()
    check(raises(lambda: root.auth.token.lookup(t)), "still valid")


@call("tokens")
def token_revoke_accessor():
    auth = root.auth.token.create(policies=["app"])["auth"]
    root.auth.token.revoke_accessor(auth["accessor"])
    check(raises(lambda: root.auth.token.lookup(auth["client_token"])), "still valid")


# --- AppRole ------------------------------------------------------------------------------------------------------------------


@call("approle")
def approle_create_or_update_approle():
    root.auth.approle.create_or_update_approle("web", token_policies=["app"], token_ttl="20m", secret_id_ttl="10m", secret_id_num_uses=0)
    check(data(root.auth.approle.read_role("web"))["token_ttl"] == 1200, "role not stored")


@call("approle")
def approle_list_roles():
    check("web" in data(root.auth.approle.list_roles())["keys"], "role not listed")


@call("approle")
def approle_read_role():
    d = data(root.auth.approle.read_role("web"))
    check(d["token_policies"] == ["app"] and d["secret_id_ttl"] == 600, f"unexpected role {d}")


@call("approle")
def approle_read_role_id():
    state["role_id"] = data(root.auth.approle.read_role_id("web"))["role_id"]
    check(len(state["role_id"]) >= 16, "no role_id")


@call("approle")
def approle_generate_secret_id():
    d = data(root.auth.approle.generate_secret_id("web", metadata={"host": "web-1"}))
    state["secret_id"], state["secret_id_accessor"] = d["secret_id"], d["secret_id_accessor"]
    check(d["secret_id_ttl"] == 600, f"unexpected secret-id {d}")


@call("approle")
def approle_read_secret_id():
    d = data(root.auth.approle.read_secret_id("web", state["secret_id"]))
    check(d["metadata"] == {"host": "web-1"} and d["secret_id_accessor"] == state["secret_id_accessor"], f"unexpected secret-id {d}")


@call("approle")
def approle_list_secret_id_accessors():
    check(state["secret_id_accessor"] in data(root.auth.approle.list_secret_id_accessors("web"))["keys"], "accessor not listed")


@call("approle")
def approle_read_secret_id_accessor():
    d = data(root.auth.approle.read_secret_id_accessor("web", state["secret_id_accessor"]))
    check(d["metadata"] == {"host": "web-1"}, f"unexpected secret-id {d}")


@call("approle")
def approle_login():
    app = client(None)
    auth = app.auth.approle.login(state["role_id"], state["secret_id"])["auth"]
    check("app" in auth["policies"] and auth["lease_duration"] == 1200 and app.token == auth["client_token"], f"unexpected login {auth}")
    check("app" in data(app.auth.token.lookup_self())["policies"], "the token does not work")


@call("approle")
def auth_approle_legacy():
    """hvac's older Client.auth_approle, still in many scripts."""
    app = client(None)
    app.auth_approle(state["role_id"], state["secret_id"])
    check(app.is_authenticated(), "not authenticated")


@call("approle")
def approle_destroy_secret_id():
    root.auth.approle.destroy_secret_id("web", state["secret_id"])
    check(raises(lambda: client(None).auth.approle.login(state["role_id"], state["secret_id"])), "destroyed secret-id still logs in")


@call("approle")
def approle_destroy_secret_id_accessor():
    d = data(root.auth.approle.generate_secret_id("web"))
    root.auth.approle.destroy_secret_id_accessor("web", d["secret_id_accessor"])
    check(raises(lambda: client(None).auth.approle.login(state["role_id"], d["secret_id"])), "destroyed secret-id still logs in")


@call("approle")
def approle_delete_role():
    root.auth.approle.create_or_update_approle("doomed", token_policies=["app"])
    root.auth.approle.delete_role("doomed")
    check(gone(lambda: root.auth.approle.read_role("doomed")), "role still there")


# --- userpass -------------------------------------------------------------------------------------------------------------------


@call("userpass")
def userpass_create_or_update_user():
    root.auth.userpass.create_or_update_user("alice", password="correct horse battery", policies=["app"])
    check(data(root.auth.userpass.read_user("alice")), "user not stored")


@call("userpass")
def userpass_list_user():
    check(data(root.auth.userpass.list_user())["keys"] == ["alice"], "unexpected users")


@call("userpass")
def userpass_read_user():
    d = data(root.auth.userpass.read_user("alice"))
    check("password" not in d and ("app" in d.get("token_policies", []) or "app" in d.get("policies", [])), f"unexpected user {d}")


@call("userpass")
def userpass_login():
    app = client(None)
    auth = app.auth.userpass.login("alice", "correct horse battery")["auth"]
    check("app" in auth["policies"] and auth["metadata"]["username"] == "alice", f"unexpected login {auth}")


@call("userpass")
def userpass_update_password_on_user():
    root.auth.userpass.update_password_on_user("alice", "staple battery horse")
    check(raises(lambda: client(None).auth.userpass.login("alice", "correct horse battery")), "old password still logs in")


@call("userpass")
def auth_userpass_legacy():
    """hvac's older Client.auth_userpass."""
    app = client(None)
    app.auth_userpass("alice", "staple battery horse")
    check(app.is_authenticated(), "not authenticated")


@call("userpass")
def userpass_delete_user():
    root.auth.userpass.delete_user("alice")
    check(raises(lambda: client(None).auth.userpass.login("alice", "staple battery horse")), "deleted user still logs in")


# --- cert: TLS client certificates -------------------------------------------------------------------------------------------


@call("cert")
def cert_create_ca_certificate_role():
    # hvac reads the certificate from a file when given a path (and a PEM string is taken for a path name).
    state["client_ca_file"] = os.environ.get("CLIENT_CA_PEM", "/dev/null")
    with open(state["client_ca_file"]) as f:
        state["client_ca"] = f.read()
    root.auth.cert.create_ca_certificate_role("hosts", state["client_ca_file"], token_policies=["app"], token_ttl="15m")
    check(data(root.auth.cert.read_ca_certificate_role("hosts"))["token_ttl"] == 900, "role not stored")


@call("cert")
def cert_read_ca_certificate_role():
    d = data(root.auth.cert.read_ca_certificate_role("hosts"))
    check(d["certificate"].strip() == state["client_ca"].strip() and d["token_policies"] == ["app"], f"unexpected role {d}")


@call("cert")
def cert_list_certificate_roles():
    check(data(root.auth.cert.list_certificate_roles())["keys"] == ["hosts"], "unexpected roles")


@call("cert")
def cert_login():
    app = client(None)
    auth = app.auth.cert.login(cert_pem=os.environ.get("CLIENT_CERT", ""), key_pem=os.environ.get("CLIENT_KEY", ""))["auth"]
    check("app" in auth["policies"] and auth["lease_duration"] == 900, f"unexpected login {auth}")


@call("cert")
def cert_delete_certificate_role():
    root.auth.cert.create_ca_certificate_role("doomed", state["client_ca_file"], token_policies=["app"])
    root.auth.cert.delete_certificate_role("doomed")
    check(gone(lambda: root.auth.cert.read_ca_certificate_role("doomed")), "role still there")


# --- JWT -------------------------------------------------------------------------------------------------------------------------


@call("jwt")
def jwt_configure():
    root.auth.jwt.configure(jwt_validation_pubkeys=[os.environ.get("JWT_PUBKEY_PEM", "")], bound_issuer="https://ci.example")
    check(data(root.auth.jwt.read_config())["bound_issuer"] == "https://ci.example", "config not stored")


@call("jwt")
def jwt_read_config():
    check(len(data(root.auth.jwt.read_config())["jwt_validation_pubkeys"]) == 1, "no key")


@call("jwt")
def jwt_create_role():
    root.auth.jwt.create_role("ci", user_claim="sub", allowed_redirect_uris=[], bound_audiences=["keyward"], bound_claims={"project": "payments"}, token_policies=["app"])
    check(data(root.auth.jwt.read_role("ci"))["user_claim"] == "sub", "role not stored")


@call("jwt")
def jwt_read_role():
    d = data(root.auth.jwt.read_role("ci"))
    check(d["bound_audiences"] == ["keyward"] and d["token_policies"] == ["app"], f"unexpected role {d}")


@call("jwt")
def jwt_list_roles():
    check("ci" in data(root.auth.jwt.list_roles())["keys"], "role not listed")


@call("jwt")
def jwt_jwt_login():
    app = client(None)
    auth = app.auth.jwt.jwt_login("ci", os.environ.get("JWT_TOKEN", ""))["auth"]
    check("app" in auth["policies"] and app.is_authenticated(), f"unexpected login {auth}")


@call("jwt")
def jwt_delete_role():
    root.auth.jwt.create_role("doomed", user_claim="sub", allowed_redirect_uris=[], bound_audiences=["keyward"])
    root.auth.jwt.delete_role("doomed")
    check(gone(lambda: root.auth.jwt.read_role("doomed")), "role still there")


# --- KV version 1 --------------------------------------------------------------------------------------------------------------


@call("kv-v1")
def kv_v1_create_or_update_secret():
    root.secrets.kv.v1.create_or_update_secret("app/db", {"user": "web", "password": "s3cret"}, mount_point="kv1")
    check(data(root.secrets.kv.v1.read_secret("app/db", mount_point="kv1"))["user"] == "web", "not stored")


@call("kv-v1")
def kv_v1_read_secret():
    check(data(root.secrets.kv.v1.read_secret("app/db", mount_point="kv1")) == {"user": "web", "password": "s3cret"}, "wrong data")


@call("kv-v1")
def kv_v1_list_secrets():
    check(data(root.secrets.kv.v1.list_secrets("app", mount_point="kv1"))["keys"] == ["db"], "not listed")


@call("kv-v1")
def kv_v1_delete_secret():
    root.secrets.kv.v1.create_or_update_secret("app/tmp", {"x": "1"}, mount_point="kv1")
    root.secrets.kv.v1.delete_secret("app/tmp", mount_point="kv1")
    check(gone(lambda: root.secrets.kv.v1.read_secret("app/tmp", mount_point="kv1")), "still there")


# --- KV version 2 --------------------------------------------------------------------------------------------------------------

kv2 = root.secrets.kv.v2


@call("kv-v2")
def kv_v2_configure():
    kv2.configure(max_versions=5, mount_point="kv")
    check(data(kv2.read_configuration(mount_point="kv"))["max_versions"] == 5, "not configured")


@call("kv-v2")
def kv_v2_read_configuration():
    check(data(kv2.read_configuration(mount_point="kv"))["cas_required"] is False, "unexpected cas_required")


@call("kv-v2")
def kv_v2_create_or_update_secret():
    d = data(kv2.create_or_update_secret("app/api", {"key": "v1"}, mount_point="kv"))
    check(d["version"] == 1, f"unexpected version {d}")


@call("kv-v2")
def kv_v2_create_or_update_secret_cas():
    check(data(kv2.create_or_update_secret("app/api", {"key": "v2"}, cas=1, mount_point="kv"))["version"] == 2, "cas write failed")


@call("kv-v2")
def kv_v2_create_or_update_secret_cas_mismatch():
    """A stale cas is refused, as Vault refuses it."""
    check(raises(lambda: kv2.create_or_update_secret("app/api", {"key": "stale"}, cas=1, mount_point="kv"), hvac.exceptions.InvalidRequest), "stale cas accepted")


@call("kv-v2")
def kv_v2_read_secret_version():
    d = data(kv2.read_secret_version("app/api", mount_point="kv"))
    check(d["data"] == {"key": "v2"} and d["metadata"]["version"] == 2, f"unexpected read {d}")


@call("kv-v2")
def kv_v2_read_secret_version_1():
    check(data(kv2.read_secret_version("app/api", version=1, mount_point="kv"))["data"] == {"key": "v1"}, "wrong version")


@call("kv-v2")
def kv_v2_patch():
    kv2.patch("app/api", {"extra": "x"}, mount_point="kv")
    check(data(kv2.read_secret_version("app/api", mount_point="kv"))["data"] == {"key": "v2", "extra": "x"}, "not merged")


@call("kv-v2")
def kv_v2_list_secrets():
    check(data(kv2.list_secrets("app", mount_point="kv"))["keys"] == ["api"], "not listed")


@call("kv-v2")
def kv_v2_read_secret_metadata():
    d = data(kv2.read_secret_metadata("app/api", mount_point="kv"))
    check(d["current_version"] == 3 and set(d["versions"]) == {"1", "2", "3"}, f"unexpected metadata {d}")


@call("kv-v2")
def kv_v2_update_metadata():
    kv2.update_metadata("app/api", max_versions=4, mount_point="kv")
    check(data(kv2.read_secret_metadata("app/api", mount_point="kv"))["max_versions"] == 4, "not updated")


@call("kv-v2")
def kv_v2_delete_latest_version_of_secret():
    kv2.delete_latest_version_of_secret("app/api", mount_point="kv")
    check(data(kv2.read_secret_metadata("app/api", mount_point="kv"))["versions"]["3"]["deletion_time"] != "", "not deleted")


@call("kv-v2")
def kv_v2_delete_secret_versions():
    kv2.delete_secret_versions("app/api", versions=[1], mount_point="kv")
    check(data(kv2.read_secret_metadata("app/api", mount_point="kv"))["versions"]["1"]["deletion_time"] != "", "not deleted")


@call("kv-v2")
def kv_v2_undelete_secret_versions():
    kv2.undelete_secret_versions("app/api", versions=[1, 3], mount_point="kv")
    check(data(kv2.read_secret_version("app/api", version=1, mount_point="kv"))["data"] == {"key": "v1"}, "not undeleted")


@call("kv-v2")
def kv_v2_destroy_secret_versions():
    kv2.destroy_secret_versions("app/api", versions=[2], mount_point="kv")
    check(data(kv2.read_secret_metadata("app/api", mount_point="kv"))["versions"]["2"]["destroyed"] is True, "not destroyed")


@call("kv-v2")
def kv_v2_delete_metadata_and_all_versions():
    kv2.delete_metadata_and_all_versions("app/api", mount_point="kv")
    check(gone(lambda: kv2.read_secret_metadata("app/api", mount_point="kv")), "still there")


# --- transit: the everyday calls (the full set is native-test/support/hvac_transit.py) ---------------------------------------

transit = root.secrets.transit


@call("transit")
def transit_create_key():
    transit.create_key("app")
    check(data(transit.read_key("app"))["type"] == "aes256-gcm96", "not created")


@call("transit")
def transit_read_key():
    check(data(transit.read_key("app"))["latest_version"] == 1, "unexpected key")


@call("transit")
def transit_list_keys():
    check("app" in data(transit.list_keys())["keys"], "not listed")


@call("transit")
def transit_encrypt_data():
    state["ciphertext"] = data(transit.encrypt_data("app", plaintext="aGVsbG8="))["ciphertext"]
    check(state["ciphertext"].startswith("vault:v1:"), "no ciphertext")


@call("transit")
def transit_decrypt_data():
    check(data(transit.decrypt_data("app", ciphertext=state["ciphertext"]))["plaintext"] == "aGVsbG8=", "wrong plaintext")


@call("transit")
def transit_encrypt_data_batch():
    items = [{"plaintext": "aXRlbQ=="} for _ in range(8)]
    results = data(transit.encrypt_data("app", plaintext="", batch_input=items))["batch_results"]
    check(len(results) == 8 and all(r["ciphertext"].startswith("vault:v1:") for r in results), "batch not encrypted")


@call("transit")
def transit_rotate_key():
    transit.rotate_key("app")
    check(data(transit.read_key("app"))["latest_version"] == 2, "not rotated")


@call("transit")
def transit_rewrap_data():
    check(data(transit.rewrap_data("app", ciphertext=state["ciphertext"]))["ciphertext"].startswith("vault:v2:"), "not rewrapped")


@call("transit")
def transit_update_key_configuration():
    transit.update_key_configuration("app", deletion_allowed=True)
    check(data(transit.read_key("app"))["deletion_allowed"] is True, "not updated")


@call("transit")
def transit_generate_data_key():
    d = data(transit.generate_data_key("app", key_type="plaintext"))
    check(data(transit.decrypt_data("app", ciphertext=d["ciphertext"]))["plaintext"] == d["plaintext"], "data key does not decrypt")


@call("transit")
def transit_sign_data():
    transit.create_key("signer", key_type="ecdsa-p256")
    state["signature"] = data(transit.sign_data("signer", hash_input="aGVsbG8="))["signature"]
    check(state["signature"].startswith("vault:v1:"), "no signature")


@call("transit")
def transit_verify_signed_data():
    check(data(transit.verify_signed_data("signer", hash_input="aGVsbG8=", signature=state["signature"]))["valid"] is True, "not valid")


@call("transit")
def transit_delete_key():
    transit.delete_key("app")
    check(gone(lambda: transit.read_key("app")), "still there")


@call("transit", "refused", r"never leave the HSM")
def transit_export_key():
    """Keys never leave the HSM in clear."""
    transit.export_key("signer", key_type="signing-key")


@call("transit", "refused", r"never leave the HSM")
def transit_backup_key():
    """A backup would carry the key in clear."""
    transit.backup_key("signer")


# --- generic calls: client.read/write/list/delete and the client's own helpers ----------------------------------------------


@call("generic")
def client_write():
    root.write("kv1/generic/one", value="1", ttl="1h")
    check(root.read("kv1/generic/one")["data"]["value"] == "1", "not written")


@call("generic")
def client_read():
    r = root.read("kv1/generic/one")
    check(r["data"] == {"value": "1", "ttl": "1h"} and r["lease_duration"] == 3600, f"unexpected read {r}")


@call("generic")
def client_read_missing():
    """hvac answers None for a path with nothing there (a 404)."""
    check(root.read("kv1/generic/none") is None, "not None")


@call("generic")
def client_list():
    check(root.list("kv1/generic")["data"]["keys"] == ["one"], "not listed")


@call("generic")
def client_delete():
    root.delete("kv1/generic/one")
    check(root.read("kv1/generic/one") is None, "still there")


@call("generic")
def client_create_token():
    """hvac's older Client.create_token."""
    auth = root.create_token(policies=["app"], ttl="10m")["auth"]
    state["legacy_token"] = auth["client_token"]
    check(auth["lease_duration"] == 600, f"unexpected token {auth}")


@call("generic")
def client_lookup_token():
    check(root.lookup_token(state["legacy_token"])["data"]["ttl"] <= 600, "unexpected lookup")


@call("generic")
def client_is_authenticated():
    check(root.is_authenticated() and not client("not-a-token").is_authenticated(), "wrong answer")


@call("generic")
def client_logout_revoke():
    """Client.logout(revoke_token=True): the token is revoked, the client forgets it."""
    t = root.auth.token.create(policies=["app"])["auth"]["client_token"]
    app = client(t)
    app.logout(revoke_token=True)
    check(app.token is None and raises(lambda: root.auth.token.lookup(t)), "token not revoked")


# --- cubbyhole: each token's private store ------------------------------------------------------------------------------------


@call("cubbyhole")
def cubbyhole_write():
    state["cubby"] = client(root.auth.token.create(policies=["default"])["auth"]["client_token"])
    state["cubby"].write("cubbyhole/note", text="mine")
    check(state["cubby"].read("cubbyhole/note")["data"] == {"text": "mine"}, "not written")


@call("cubbyhole")
def cubbyhole_read():
    check(state["cubby"].read("cubbyhole/note")["data"]["text"] == "mine", "wrong data")


@call("cubbyhole")
def cubbyhole_list():
    check(state["cubby"].list("cubbyhole")["data"]["keys"] == ["note"], "not listed")


@call("cubbyhole")
def cubbyhole_isolated():
    """Another token (root included) sees nothing of it."""
    check(root.read("cubbyhole/note") is None, "root reads another token's cubbyhole")


@call("cubbyhole")
def cubbyhole_delete():
    state["cubby"].delete("cubbyhole/note")
    check(state["cubby"].read("cubbyhole/note") is None, "still there")


# --- response wrapping ----------------------------------------------------------------------------------------------------------


@call("wrapping")
def read_with_wrap_ttl():
    root.write("kv1/wrapped", value="only once")
    w = root.read("kv1/wrapped", wrap_ttl="60s")
    state["wrap_token"] = w["wrap_info"]["token"]
    check(w["data"] is None and w["wrap_info"]["ttl"] == 60, f"not wrapped: {w}")


@call("wrapping")
def sys_wrapping_lookup():
    d = root.write("sys/wrapping/lookup", token=state["wrap_token"])["data"]
    check(d["creation_ttl"] == 60 and d["creation_path"] == "kv1/wrapped", f"unexpected lookup {d}")


@call("wrapping")
def sys_wrapping_rewrap():
    new = root.write("sys/wrapping/rewrap", token=state["wrap_token"])["wrap_info"]["token"]
    check(raises(lambda: root.sys.unwrap(state["wrap_token"])), "old wrapping token still unwraps")
    state["wrap_token"] = new


@call("wrapping")
def sys_unwrap():
    check(root.sys.unwrap(state["wrap_token"])["data"] == {"value": "only once"}, "wrong data")


@call("wrapping")
def sys_unwrap_twice():
    """A wrapping token is single-use."""
    check(raises(lambda: root.sys.unwrap(state["wrap_token"]), hvac.exceptions.InvalidRequest), "unwrapped twice")


@call("wrapping")
def sys_wrapping_wrap():
    w = root.write("sys/wrapping/wrap", wrap_ttl="5m", password="hunter2")
    state["wrap_token"] = w["wrap_info"]["token"]
    check(w["wrap_info"]["ttl"] == 300, f"unexpected wrap {w}")


@call("wrapping")
def sys_unwrap_as_client_token():
    """The wrapping token as the client's own token, as a receiving workload unwraps."""
    check(client(state["wrap_token"]).sys.unwrap()["data"] == {"password": "hunter2"}, "wrong data")


@call("wrapping")
def token_create_wrapped():
    token = root.auth.token.create(policies=["app"], wrap_ttl="60s")["wrap_info"]["token"]
    unwrapped = root.sys.unwrap(token)["auth"]["client_token"]
    check(client(unwrapped).is_authenticated(), "unwrapped token does not work")


@call("wrapping")
def approle_secret_id_wrapped():
    """A response-wrapped secret-id, unwrapped by the workload and used to log in."""
    token = root.write("auth/approle/role/web/secret-id", wrap_ttl="60s")["wrap_info"]["token"]
    secret_id = client(None).sys.unwrap(token)["data"]["secret_id"]
    check(client(None).auth.approle.login(state["role_id"], secret_id)["auth"]["client_token"], "no token")


# --- areas keyward does not offer -----------------------------------------------------------------------------------------------


@call("not-offered", "refused", r"leases")
def sys_renew_lease():
    """Nothing keyward returns is leased (no lease_id); a lease renewal has nothing to act on."""
    root.sys.renew_lease("kv1/wrapped/abc")


@call("not-offered", "refused", r"leases")
def sys_revoke_lease():
    root.sys.revoke_lease("kv1/wrapped/abc")


@call("not-offered", "refused", r"leases")
def sys_list_leases():
    root.sys.list_leases("kv1/")


@call("not-offered", "refused", r"identity")
def identity_create_or_update_entity():
    """Identity entities, aliases and groups are not part of keyward."""
    root.secrets.identity.create_or_update_entity("alice", policies=["app"])


@call("not-offered", "refused", r"identity")
def identity_create_or_update_group():
    root.secrets.identity.create_or_update_group("admins", policies=["app"])


@call("not-offered", "refused", r"namespace")
def sys_list_namespaces():
    """keyward has one (root) namespace."""
    root.sys.list_namespaces()


@call("not-offered", "refused", r"namespace")
def client_with_namespace():
    client(ROOT, namespace="team-a").read("kv1/wrapped")


@call("not-offered", "refused", r"raft|integrated storage")
def sys_take_raft_snapshot():
    """keyward's storage is a file or PostgreSQL, backed up as such."""
    root.sys.take_raft_snapshot()


def run(entry):
    last["status"] = None
    out = {"name": entry["name"], "group": entry["group"], "expect": entry["expect"]}
    try:
        entry["run"]()
        if entry["expect"] == "works":
            return {**out, "ok": True, "status": last["status"], "message": ""}
        return {**out, "ok": False, "status": last["status"], "message": "answered instead of refusing"}
    except hvac.exceptions.VaultError as err:
        status = last["status"] or refused_status(err)
        message = "; ".join(err.errors) if isinstance(err.errors, list) else str(err.args[0] if err.args else err)
    except AssertionError as err:
        return {**out, "ok": False, "status": last["status"], "message": f"check failed: {err}"}
    except requests.exceptions.RequestException as err:
        return {**out, "ok": False, "status": 0, "message": f"{type(err).__name__}: {err}"}
    except Exception as err:  # noqa: BLE001 — a client-side failure (a KeyError on a reply missing a field) is that call's result
        return {**out, "ok": False, "status": last["status"], "message": f"{type(err).__name__}: {err}"}
    refused_clearly = entry["expect"] == "refused" and 400 <= (status or 0) < 500 and REFUSAL.search(message) and re.search(entry["pattern"], message, re.I)
    return {**out, "ok": bool(refused_clearly), "status": status, "message": message[:300]}


if __name__ == "__main__":
    if "--list" in sys.argv:
        for entry in CALLS:
            print(json.dumps({k: entry[k] for k in ("name", "group", "expect", "doc")}))
        sys.exit(0)
    started = time.monotonic()
    for entry in CALLS:
        print(json.dumps(run(entry)), flush=True)
    print(json.dumps({"done": len(CALLS), "seconds": round(time.monotonic() - started, 1)}), flush=True)

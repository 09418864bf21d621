"""hvac's transit calls against a keyward server, as an application using Debian's python3-hvac would make them.

Usage: VAULT_ADDR=... VAULT_TOKEN=... python3 hvac_transit.py
Prints one line per call ("ok <name>") and exits non-zero at the first call that fails.
"""
import base64
import os
import sys

import hvac

# strict_http: list as GET ?list=true (hvac's switch for proxies without the LIST method); hvac's default,
# LIST, is what hvac_compat.py uses.
client = hvac.Client(url=os.environ["VAULT_ADDR"], token=os.environ["VAULT_TOKEN"], strict_http=True)
transit = client.secrets.transit


def b64(text):
    return base64.b64encode(text.encode()).decode()


def check(name, condition):
    if not condition:
        print(f"FAILED {name}", flush=True)
        sys.exit(1)
    print(f"ok {name}", flush=True)


transit.create_key(name="hvac-aes")
check("create_key + read_key", transit.read_key(name="hvac-aes")["data"]["type"] == "aes256-gcm96")
check("list_keys", "hvac-aes" in transit.list_keys()["data"]["keys"])

ciphertext = transit.encrypt_data(name="hvac-aes", plaintext=b64("hvac secret"))["data"]["ciphertext"]
check("encrypt_data", ciphertext.startswith("vault:v1:"))
plaintext = transit.decrypt_data(name="hvac-aes", ciphertext=ciphertext)["data"]["plaintext"]
check("decrypt_data", base64.b64decode(plaintext).decode() == "hvac secret")

batch = transit.encrypt_data(name="hvac-aes", plaintext="", batch_input=[{"plaintext": b64(f"item {i}")} for i in range(10)])
results = batch["data"]["batch_results"]
check("encrypt_data batch_input", len(results) == 10 and all(r["ciphertext"].startswith("vault:v1:") for r in results))

transit.rotate_key(name="hvac-aes")
check("rotate_key", transit.read_key(name="hvac-aes")["data"]["latest_version"] == 2)
rewrapped = transit.rewrap_data(name="hvac-aes", ciphertext=ciphertext)["data"]["ciphertext"]
check("rewrap_data", rewrapped.startswith("vault:v2:"))
check("decrypt rewrapped", base64.b64decode(transit.decrypt_data(name="hvac-aes", ciphertext=rewrapped)["data"]["plaintext"]).decode() == "hvac secret")

transit.update_key_configuration(name="hvac-aes", min_decryption_version=2, deletion_allowed=True)
check("update_key_configuration", transit.read_key(name="hvac-aes")["data"]["min_decryption_version"] == 2)
try:
    transit.decrypt_data(name="hvac-aes", ciphertext=ciphertext)
    check("old ciphertext refused after min_decryption_version", False)
except hvac.exceptions.InvalidRequest as err:
    check("old ciphertext refused after min_decryption_version", "disallowed" in str(err))
transit.trim_key(name="hvac-aes", min_version=2)
check("trim_key", list(transit.read_key(name="hvac-aes")["data"]["keys"].keys()) == ["2"])

data_key = transit.generate_data_key(name="hvac-aes", key_type="plaintext", bits=256)["data"]
check("generate_data_key", len(base64.b64decode(data_key["plaintext"])) == 32)
check("decrypt data key", transit.decrypt_data(name="hvac-aes", ciphertext=data_key["ciphertext"])["data"]["plaintext"] == data_key["plaintext"])

check("generate_random_bytes", len(base64.b64decode(transit.generate_random_bytes(n_bytes=24)["data"]["random_bytes"])) == 24)
check("hash_data", transit.hash_data(hash_input=b64("hello"), algorithm="sha2-256")["data"]["sum"] == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")

# hvac 0.11's create_key knows no "hmac" type; every key has an HMAC key per version, so an AES key serves.
transit.create_key(name="hvac-mac")
mac = transit.generate_hmac(name="hvac-mac", hash_input=b64("mac me"), algorithm="sha2-512")["data"]["hmac"]
check("generate_hmac", mac.startswith("vault:v1:") and len(base64.b64decode(mac.split(":")[2])) == 64)
check("verify_signed_data (hmac)", transit.verify_signed_data(name="hvac-mac", hash_input=b64("mac me"), hmac=mac, hash_algorithm="sha2-512")["data"]["valid"])
check("verify_signed_data rejects (hmac)", not transit.verify_signed_data(name="hvac-mac", hash_input=b64("mac you"), hmac=mac, hash_algorithm="sha2-512")["data"]["valid"])

for key_type in ("ecdsa-p256", "rsa-2048"):
    name = f"hvac-{key_type}"
    transit.create_key(name=name, key_type=key_type)
    check(f"read_key public key ({key_type})", "BEGIN PUBLIC KEY" in transit.read_key(name=name)["data"]["keys"]["1"]["public_key"])
    signature = transit.sign_data(name=name, hash_input=b64("sign me"), hash_algorithm="sha2-256")["data"]["signature"]
    check(f"sign_data ({key_type})", signature.startswith("vault:v1:"))
    check(f"verify_signed_data ({key_type})", transit.verify_signed_data(name=name, hash_input=b64("sign me"), signature=signature, hash_algorithm="sha2-256")["data"]["valid"])
    check(f"verify_signed_data rejects ({key_type})", not transit.verify_signed_data(name=name, hash_input=b64("sign you"), signature=signature, hash_algorithm="sha2-256")["data"]["valid"])
signature = transit.sign_data(name="hvac-rsa-2048", hash_input=b64("v15"), signature_algorithm="pkcs1v15")["data"]["signature"]
check("sign_data pkcs1v15", transit.verify_signed_data(name="hvac-rsa-2048", hash_input=b64("v15"), signature=signature, signature_algorithm="pkcs1v15")["data"]["valid"])

for call, run in (("export_key", lambda: transit.export_key(name="hvac-aes", key_type="encryption-key")), ("backup_key", lambda: transit.backup_key(name="hvac-aes"))):
    try:
        run()
        check(f"{call} refused", False)
    except hvac.exceptions.InvalidRequest as err:
        check(f"{call} refused", "never leave the HSM" in str(err))

transit.delete_key(name="hvac-aes")
try:
    transit.read_key(name="hvac-aes")
    check("delete_key", False)
except hvac.exceptions.InvalidPath:
    check("delete_key", True)
print("all hvac transit calls passed", flush=True)

/*
 * A PKCS#11 module that is NSS softokn in FIPS mode.
 *
 * softokn has two function lists: C_GetFunctionList gives the non-FIPS one (its NSC_ functions) and
 * FC_GetFunctionList the FIPS one (its FC_ functions: power-up self-tests, FIPS login rules, no
 * plaintext key import). pkcs11js, like most PKCS#11 applications, only asks a module for
 * C_GetFunctionList, so this module answers that one call with softokn's FC_GetFunctionList.
 * Everything else, C_Initialize's library parameters included, goes straight to softokn.
 *
 * SOFTOKN_PATH, softokn's full path, is given by build.sh.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <p11-kit/pkcs11.h>

CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list)
{
  /* Never dlclose'd: the function list points into softokn for as long as the process uses it. */
  void *softokn = dlopen(SOFTOKN_PATH, RTLD_NOW | RTLD_LOCAL);
  if (!softokn) {
    fprintf(stderr, "nss-fips-loader: %s\n", dlerror());
    return CKR_GENERAL_ERROR;
  }
  CK_C_GetFunctionList fips = (CK_C_GetFunctionList)dlsym(softokn, "FC_GetFunctionList");
  if (!fips) {
    fprintf(stderr, "nss-fips-loader: %s has no FC_GetFunctionList\n", SOFTOKN_PATH);
    return CKR_GENERAL_ERROR;
  }
  return fips(list);
}

/*
 * keyward's HSM emulator: a PKCS#11 module for tests and benchmarks that forwards every call to
 * a real module (SoftHSM2 unless KEYWARD_HSM_EMULATOR_TARGET names another) and, on the way,
 * behaves like a network HSM:
 *   - every call waits a round trip (latency_us) before it goes on, asleep, not spinning;
 *   - open sessions are capped (CKR_SESSION_COUNT past max_sessions, reported in C_GetTokenInfo);
 *   - the Nth call of one function from when it is armed fails with a chosen CKR;
 *   - the connection can drop: every session of the target is closed and calls fail until the
 *     application calls C_Finalize and C_Initialize again;
 *   - every call is counted, per function;
 *   - it can act as a vendor's HSM in FIPS mode (struct vendor, read from the environment at each
 *     C_Initialize): AES-GCM IVs chosen by the module the way AWS CloudHSM, Thales Luna or Thales
 *     ProtectServer do it, no plaintext key import (as NSS in FIPS mode), and mechanisms hidden or
 *     offered under another number.
 * Tests steer it at run time through the control block (struct control), which lives in the file
 * KEYWARD_HSM_EMULATOR_CONTROL names; see docs/HSM.md. native-test/support/hsm-emulator.ts holds
 * the same layout for TypeScript: change both together and bump CONTROL_VERSION.
 *
 * Calls may be in flight on several sessions from several threads at once: the round-trip wait
 * happens outside every lock, and the only process-wide lock held across a target call is the
 * read side of `connection`, which a drop, C_Initialize and C_Finalize take for writing.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <p11-kit/pkcs11.h> /* Debian: libp11-kit-dev, built with -I/usr/include/p11-kit-1 */

#define DEFAULT_TARGET "/usr/lib/softhsm/libsofthsm2.so"

#define LUNA_IV_BYTES 16
#define CLOUDHSM_IV_BYTES 12
#define PROTECTSERVER_MAX_IV_BYTES 128 /* ProtectToolkit's documented limit, and the largest IV the module makes */
#define MAX_MECHANISM_RULES 32         /* per list in KEYWARD_HSM_EMULATOR_HIDE_MECHANISMS and _RENUMBER */

/* Every member of CK_FUNCTION_LIST (PKCS#11 2.40), in its order, which is also the order of the call counters. */
#define FUNCTIONS(X)                                                                                 \
  X(C_Initialize) X(C_Finalize) X(C_GetInfo) X(C_GetFunctionList) X(C_GetSlotList) X(C_GetSlotInfo)  \
  X(C_GetTokenInfo) X(C_GetMechanismList) X(C_GetMechanismInfo) X(C_InitToken) X(C_InitPIN)          \
  X(C_SetPIN) X(C_OpenSession) X(C_CloseSession) X(C_CloseAllSessions) X(C_GetSessionInfo)           \
  X(C_GetOperationState) X(C_SetOperationState) X(C_Login) X(C_Logout) X(C_CreateObject)             \
  X(C_CopyObject) X(C_DestroyObject) X(C_GetObjectSize) X(C_GetAttributeValue)                       \
  X(C_SetAttributeValue) X(C_FindObjectsInit) X(C_FindObjects) X(C_FindObjectsFinal)                 \
  X(C_EncryptInit) X(C_Encrypt) X(C_EncryptUpdate) X(C_EncryptFinal) X(C_DecryptInit) X(C_Decrypt)   \
  X(C_DecryptUpdate) X(C_DecryptFinal) X(C_DigestInit) X(C_Digest) X(C_DigestUpdate) X(C_DigestKey)  \
  X(C_DigestFinal) X(C_SignInit) X(C_Sign) X(C_SignUpdate) X(C_SignFinal) X(C_SignRecoverInit)       \
  X(C_SignRecover) X(C_VerifyInit) X(C_Verify) X(C_VerifyUpdate) X(C_VerifyFinal)                    \
  X(C_VerifyRecoverInit) X(C_VerifyRecover) X(C_DigestEncryptUpdate) X(C_DecryptDigestUpdate)        \
  X(C_SignEncryptUpdate) X(C_DecryptVerifyUpdate) X(C_GenerateKey) X(C_GenerateKeyPair) X(C_WrapKey) \
  X(C_UnwrapKey) X(C_DeriveKey) X(C_SeedRandom) X(C_GenerateRandom) X(C_GetFunctionStatus)           \
  X(C_CancelFunction) X(C_WaitForSlotEvent)

enum function {
#define X(name) FN_##name,
  FUNCTIONS(X)
#undef X
  FN_COUNT
};

static const char *const function_names[FN_COUNT] = {
#define X(name) #name,
    FUNCTIONS(X)
#undef X
};

/* ---- control block ---------------------------------------------------------------------- */

#define CONTROL_MAGIC 0x554d454d5348574bULL /* "KWHSMEMU" read as a little-endian uint64 */
#define CONTROL_VERSION 1
#define CONTROL_HEADER_WORDS 32 /* room for the settings later issues add, without moving the counters */

/* One uint64 per field, native byte order; tests read and write it while calls are in flight. */
struct control {
  uint64_t magic;
  uint64_t version;
  uint64_t function_count;
  _Atomic uint64_t latency_us;      /* round-trip wait before every call */
  _Atomic uint64_t max_sessions;    /* 0: no cap */
  _Atomic uint64_t fail_function;   /* index into FUNCTIONS */
  _Atomic uint64_t fail_countdown;  /* 0: disarmed; the call of fail_function that takes it from 1 to 0 fails */
  _Atomic uint64_t fail_ckr;
  _Atomic uint64_t faults_fired;
  _Atomic uint64_t drop_generation; /* incremented to drop the connection */
  _Atomic uint64_t open_sessions;
  _Atomic uint64_t peak_sessions;
  /* Added in the reserved words, so version 1 still reads right (a file made before has 0 here):
     AES-GCM encryptions the target ran under the caller's IV while the module should choose IVs. */
  _Atomic uint64_t caller_iv_encryptions;
  uint64_t reserved[CONTROL_HEADER_WORDS - 13];
  _Atomic uint64_t calls[FN_COUNT];
};
_Static_assert(offsetof(struct control, calls) == CONTROL_HEADER_WORDS * sizeof(uint64_t), "header size");
_Static_assert(sizeof(_Atomic uint64_t) == sizeof(uint64_t), "atomics add no size");

/* The CKR names a fault is most often given in the environment; any other CKR can be given as a number. */
#define CKR_NAME(name) {#name, name}
static const struct {
  const char *name;
  CK_RV value;
} ckr_names[] = {
    CKR_NAME(CKR_GENERAL_ERROR),          CKR_NAME(CKR_FUNCTION_FAILED),
    CKR_NAME(CKR_HOST_MEMORY),            CKR_NAME(CKR_DEVICE_ERROR),
    CKR_NAME(CKR_DEVICE_MEMORY),          CKR_NAME(CKR_DEVICE_REMOVED),
    CKR_NAME(CKR_TOKEN_NOT_PRESENT),      CKR_NAME(CKR_SESSION_CLOSED),
    CKR_NAME(CKR_SESSION_COUNT),          CKR_NAME(CKR_SESSION_HANDLE_INVALID),
    CKR_NAME(CKR_OBJECT_HANDLE_INVALID),  CKR_NAME(CKR_KEY_HANDLE_INVALID),
    CKR_NAME(CKR_USER_NOT_LOGGED_IN),     CKR_NAME(CKR_OPERATION_ACTIVE),
    CKR_NAME(CKR_CRYPTOKI_NOT_INITIALIZED), CKR_NAME(CKR_ENCRYPTED_DATA_INVALID),
    CKR_NAME(CKR_PIN_INCORRECT),          CKR_NAME(CKR_PIN_LOCKED),
};

/* ---- module state ----------------------------------------------------------------------- */

static CK_FUNCTION_LIST_PTR target;
static struct control *ctl;
static CK_FUNCTION_LIST emulator_list;
static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static CK_RV load_result;

/* Held for reading by every call forwarded alongside others, for writing by what ends the connection. */
static pthread_rwlock_t connection;
/* ctl->drop_generation at the last C_Initialize or C_Finalize: the connection is down while they differ. Guarded by `connection`. */
static uint64_t joined_generation;

/* The sessions opened through the emulator: what a drop closes and what the cap counts. */
struct session {
  CK_SESSION_HANDLE handle;
  CK_SLOT_ID slot;
  int rw;
  /* Luna mode: the session's encryption ends with this IV after the tag. Set or cleared by each
     successful C_EncryptInit and left in place when the operation ends: until the next one, the
     target fails C_Encrypt and C_EncryptFinal whatever the emulator does. */
  int appends_iv;
  CK_BYTE appended_iv[LUNA_IV_BYTES];
};
static struct {
  pthread_mutex_t lock;
  struct session *list;
  size_t count, capacity;
} sessions = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void complain(const char *what, const char *detail) {
  fprintf(stderr, "keyward-hsm-emulator: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
}

/* ---- loading ---------------------------------------------------------------------------- */

static CK_RV load_target(void) {
  const char *path = getenv("KEYWARD_HSM_EMULATOR_TARGET");
  if (!path || !*path) path = DEFAULT_TARGET;
  void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    complain("cannot load the target module", dlerror());
    return CKR_GENERAL_ERROR;
  }
  CK_C_GetFunctionList get = (CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList");
  if (!get) {
    complain("the target module has no C_GetFunctionList", path);
    return CKR_GENERAL_ERROR;
  }
  return get(&target);
}

/* Reads an unsigned number from the environment; an unset variable leaves *out alone. */
static int env_number(const char *var, uint64_t *out) {
  const char *text = getenv(var);
  if (!text || !*text) return 0;
  char *end;
  errno = 0;
  unsigned long long value = strtoull(text, &end, 0);
  if (errno || *end) {
    complain("not a number", var);
    return -1;
  }
  *out = value;
  return 0;
}

static int env_function(const char *var, uint64_t *out) {
  const char *text = getenv(var);
  if (!text || !*text) return 0;
  for (int i = 0; i < FN_COUNT; i++) {
    if (strcmp(text, function_names[i]) == 0) {
      *out = (uint64_t)i;
      return 0;
    }
  }
  complain("not a PKCS#11 function name", var);
  return -1;
}

static int env_ckr(const char *var, uint64_t *out) {
  const char *text = getenv(var);
  if (!text || strncmp(text, "CKR_", 4) != 0) return env_number(var, out);
  for (size_t i = 0; i < sizeof ckr_names / sizeof ckr_names[0]; i++) {
    if (strcmp(text, ckr_names[i].name) == 0) {
      *out = ckr_names[i].value;
      return 0;
    }
  }
  complain("unknown CKR name (give it as a number)", var);
  return -1;
}

/* A new control block takes its settings from the environment. */
static CK_RV init_control(struct control *c) {
  uint64_t latency = 0, max_sessions = 0, fail_function = 0, fail_nth = 0, fail_ckr = CKR_DEVICE_ERROR;
  if (env_number("KEYWARD_HSM_EMULATOR_LATENCY_US", &latency) || env_number("KEYWARD_HSM_EMULATOR_MAX_SESSIONS", &max_sessions) ||
      env_function("KEYWARD_HSM_EMULATOR_FAIL_FUNCTION", &fail_function) || env_number("KEYWARD_HSM_EMULATOR_FAIL_NTH", &fail_nth) ||
      env_ckr("KEYWARD_HSM_EMULATOR_FAIL_CKR", &fail_ckr)) {
    return CKR_GENERAL_ERROR;
  }
  c->magic = CONTROL_MAGIC;
  c->version = CONTROL_VERSION;
  c->function_count = FN_COUNT;
  c->latency_us = latency;
  c->max_sessions = max_sessions;
  c->fail_function = fail_function;
  c->fail_ckr = fail_ckr;
  c->fail_countdown = fail_nth;
  return CKR_OK;
}

/*
 * Maps the control block: the file KEYWARD_HSM_EMULATOR_CONTROL names (created from the
 * environment when missing or empty; used as it is when it already holds one), else private memory
 * set from the environment.
 */
static CK_RV map_control(void) {
  const char *path = getenv("KEYWARD_HSM_EMULATOR_CONTROL");
  if (!path || !*path) {
    ctl = mmap(NULL, sizeof *ctl, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return ctl == MAP_FAILED ? CKR_HOST_MEMORY : init_control(ctl);
  }
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) {
    complain("cannot open the control file", path);
    if (fd >= 0) close(fd);
    return CKR_GENERAL_ERROR;
  }
  int fresh = st.st_size == 0;
  if ((fresh && ftruncate(fd, sizeof *ctl) != 0) || (!fresh && (size_t)st.st_size != sizeof *ctl)) {
    complain("the control file has the wrong size (another emulator version?)", path);
    close(fd);
    return CKR_GENERAL_ERROR;
  }
  ctl = mmap(NULL, sizeof *ctl, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (ctl == MAP_FAILED) return CKR_HOST_MEMORY;
  if (fresh) return init_control(ctl);
  if (ctl->magic != CONTROL_MAGIC || ctl->version != CONTROL_VERSION || ctl->function_count != FN_COUNT) {
    complain("the control file is not an emulator control block of this version", path);
    return CKR_GENERAL_ERROR;
  }
  /* A file outlives its process: sessions an earlier process counted died with it. */
  atomic_store(&ctl->open_sessions, 0);
  return CKR_OK;
}

/* ---- vendor modes: what a FIPS-mode HSM does differently, read at each C_Initialize ----------- */

/* Who chooses the IV of an AES-GCM encryption (NIST SP 800-38D §8.2 has FIPS modules choose it). */
enum gcm_iv {
  IV_CALLER,        /* the caller, as SoftHSM2 lets it: passed through */
  IV_CLOUDHSM,      /* AWS CloudHSM: the caller passes 12 zero bytes, the module writes its IV into them at C_EncryptInit */
  IV_LUNA,          /* Thales Luna: the module makes a 16-byte IV and appends it to the ciphertext after the tag */
  IV_PROTECTSERVER, /* Thales ProtectServer: the module fills the caller's zero IV, whatever its length, at C_EncryptInit */
};
static const char *const gcm_iv_names[] = {"caller", "cloudhsm", "luna", "protectserver"};

struct renumbering {
  CK_MECHANISM_TYPE target;  /* the target's number for the mechanism */
  CK_MECHANISM_TYPE offered; /* the only number the module offers it under */
};

struct vendor {
  enum gcm_iv gcm_iv;
  int refuse_value_import; /* C_CreateObject of a secret or private key with CKA_VALUE is refused */
  size_t hidden_count, renumbered_count;
  CK_MECHANISM_TYPE hidden[MAX_MECHANISM_RULES]; /* numbers the module does not offer */
  struct renumbering renumbered[MAX_MECHANISM_RULES];
};

/*
 * Read at each successful C_Initialize rather than at load, so a test can make the module another
 * vendor's by finalizing and initializing again, as an application would reconnect to another HSM.
 * Guarded by `connection`: written with it held for writing, read by calls holding it.
 */
static struct vendor vendor;

static int env_gcm_iv(const char *var, enum gcm_iv *out) {
  const char *text = getenv(var);
  if (!text || !*text) return 0;
  for (size_t i = 0; i < sizeof gcm_iv_names / sizeof gcm_iv_names[0]; i++) {
    if (strcmp(text, gcm_iv_names[i]) == 0) {
      *out = (enum gcm_iv)i;
      return 0;
    }
  }
  complain("not caller, cloudhsm, luna or protectserver", var);
  return -1;
}

static int env_flag(const char *var, int *out) {
  const char *text = getenv(var);
  if (!text || !*text || strcmp(text, "0") == 0) return 0;
  if (strcmp(text, "1") == 0) {
    *out = 1;
    return 0;
  }
  complain("not 0 or 1", var);
  return -1;
}

/* Reads one mechanism number (decimal, or 0x hex) at *p and moves past it. */
static int read_mechanism(const char **p, CK_MECHANISM_TYPE *out) {
  if (!isdigit((unsigned char)**p)) return -1; /* strtoull would take spaces and a minus sign */
  char *end;
  errno = 0;
  unsigned long long n = strtoull(*p, &end, 0);
  if (errno || n > (CK_ULONG)-1) return -1;
  *out = (CK_MECHANISM_TYPE)n;
  *p = end;
  return 0;
}

/* "0x210A,0x1087": the mechanisms to hide. */
static int env_hidden(const char *var, struct vendor *v) {
  const char *p = getenv(var);
  if (!p || !*p) return 0;
  while (v->hidden_count < MAX_MECHANISM_RULES && read_mechanism(&p, &v->hidden[v->hidden_count]) == 0) {
    v->hidden_count++;
    if (*p == '\0') return 0;
    if (*p++ != ',') break;
  }
  complain("not a comma-separated list of at most 32 mechanism numbers", var);
  return -1;
}

/* "0x210A:0x210B,...": the target's mechanism 0x210A offered as 0x210B only. */
static int env_renumbered(const char *var, struct vendor *v) {
  const char *p = getenv(var);
  if (!p || !*p) return 0;
  while (v->renumbered_count < MAX_MECHANISM_RULES) {
    struct renumbering *r = &v->renumbered[v->renumbered_count];
    if (read_mechanism(&p, &r->target) != 0 || *p++ != ':' || read_mechanism(&p, &r->offered) != 0) break;
    v->renumbered_count++;
    if (*p == '\0') return 0;
    if (*p++ != ',') break;
  }
  complain("not a comma-separated list of at most 32 TARGET:OFFERED mechanism number pairs", var);
  return -1;
}

static int read_vendor(struct vendor *v) {
  *v = (struct vendor){.gcm_iv = IV_CALLER};
  return env_gcm_iv("KEYWARD_HSM_EMULATOR_GCM_IV", &v->gcm_iv) || env_flag("KEYWARD_HSM_EMULATOR_REFUSE_VALUE_IMPORT", &v->refuse_value_import) ||
         env_hidden("KEYWARD_HSM_EMULATOR_HIDE_MECHANISMS", v) || env_renumbered("KEYWARD_HSM_EMULATOR_RENUMBER", v);
}

static void build_function_list(void);

static void load(void) {
  pthread_rwlockattr_t attr;
  pthread_rwlockattr_init(&attr);
  /* A drop or C_Finalize must get in while other threads keep calling. */
  pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_init(&connection, &attr);
  pthread_rwlockattr_destroy(&attr);
  load_result = load_target();
  if (load_result == CKR_OK) load_result = map_control();
  if (load_result != CKR_OK) return;
  build_function_list();
  joined_generation = atomic_load(&ctl->drop_generation);
}

CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list) {
  pthread_once(&load_once, load);
  if (load_result != CKR_OK) return load_result;
  if (!list) return CKR_ARGUMENTS_BAD;
  atomic_fetch_add_explicit(&ctl->calls[FN_C_GetFunctionList], 1, memory_order_relaxed);
  *list = &emulator_list;
  return CKR_OK;
}

/* ---- what every call goes through --------------------------------------------------------- */

/* What a call addresses, which decides how it fails once the connection is down and how a fault treats it. */
enum scope {
  LIBRARY,   /* no slot or session: answered even when the connection is down */
  SLOT,      /* a slot or token: CKR_DEVICE_REMOVED when down */
  SESSION,   /* a session: CKR_SESSION_HANDLE_INVALID when down */
  OPERATION, /* a session call that ends a crypto operation: PKCS#11 says an error ends it too, so a
                faulted one still runs on the target (ending the operation there) and its answer is replaced */
};

/* Whether this call is the armed fault's Nth; claims the countdown atomically so exactly one call fires. */
static CK_RV injected_fault(enum function fn) {
  if (atomic_load(&ctl->fail_function) != (uint64_t)fn) return CKR_OK;
  uint64_t left = atomic_load(&ctl->fail_countdown);
  do {
    if (left == 0) return CKR_OK;
  } while (!atomic_compare_exchange_weak(&ctl->fail_countdown, &left, left - 1));
  if (left != 1) return CKR_OK;
  atomic_fetch_add(&ctl->faults_fired, 1);
  return (CK_RV)atomic_load(&ctl->fail_ckr);
}

/* The network round trip: a real sleep, so threads waiting on it cost no CPU. */
static void round_trip(void) {
  uint64_t us = atomic_load_explicit(&ctl->latency_us, memory_order_relaxed);
  if (us == 0) return;
  struct timespec until;
  clock_gettime(CLOCK_MONOTONIC, &until);
  until.tv_sec += (time_t)(us / 1000000);
  until.tv_nsec += (long)(us % 1000000) * 1000;
  if (until.tv_nsec >= 1000000000) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000;
  }
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL) == EINTR) {
  }
}

/* Counts the call, decides whether it is the one to fail, then waits its round trip. Returns the fault's CKR or CKR_OK. */
static CK_RV arrive(enum function fn) {
  atomic_fetch_add_explicit(&ctl->calls[fn], 1, memory_order_relaxed);
  CK_RV fault = injected_fault(fn);
  round_trip();
  return fault;
}

static int connection_down(void) {
  return atomic_load(&ctl->drop_generation) != joined_generation;
}

static void forget_sessions_locked(void) {
  atomic_store(&ctl->open_sessions, 0);
  sessions.count = 0;
}

/* A dropped connection takes the HSM's sessions with it: close them on the target, so their objects die. */
static void sever(void) {
  pthread_rwlock_wrlock(&connection);
  if (connection_down()) {
    pthread_mutex_lock(&sessions.lock);
    for (size_t i = 0; i < sessions.count; i++) target->C_CloseSession(sessions.list[i].handle);
    forget_sessions_locked();
    pthread_mutex_unlock(&sessions.lock);
  }
  pthread_rwlock_unlock(&connection);
}

/* Lets a call through to the target: returns CKR_OK with `connection` held for reading, or the error a down connection gives. */
static CK_RV enter(enum scope scope) {
  pthread_rwlock_rdlock(&connection);
  if (scope == LIBRARY || !connection_down()) return CKR_OK;
  pthread_rwlock_unlock(&connection);
  sever();
  return scope == SLOT ? CKR_DEVICE_REMOVED : CKR_SESSION_HANDLE_INVALID;
}

static void leave(void) {
  pthread_rwlock_unlock(&connection);
}

/* A call with nothing of its own to emulate: count, fault, round trip, connection check, forward. */
#define FORWARD(name, scope, params, args)                           \
  static CK_RV emu_##name params {                                   \
    CK_RV fault = arrive(FN_##name);                                 \
    if (fault != CKR_OK && (scope) != OPERATION) return fault;       \
    CK_RV rv = enter(scope);                                         \
    if (rv != CKR_OK) return rv;                                     \
    rv = target->name args;                                          \
    leave();                                                         \
    return fault != CKR_OK ? fault : rv;                             \
  }

typedef CK_SESSION_HANDLE SH;
typedef CK_OBJECT_HANDLE OH;
typedef CK_ATTRIBUTE_PTR AP;
typedef CK_MECHANISM_PTR MP;
typedef CK_BYTE_PTR BP;
typedef CK_ULONG_PTR LP;
typedef CK_ULONG UL;

/* ---- mechanisms: hidden, or offered under another number ------------------------------------ */

static int hidden(CK_MECHANISM_TYPE offered) {
  for (size_t i = 0; i < vendor.hidden_count; i++) {
    if (vendor.hidden[i] == offered) return 1;
  }
  return 0;
}

/* The target's number for a mechanism the caller names, or CKR_MECHANISM_INVALID when the module does not offer it. */
static CK_RV target_mechanism(CK_MECHANISM_TYPE offered, CK_MECHANISM_TYPE *target_type) {
  if (hidden(offered)) return CKR_MECHANISM_INVALID;
  for (size_t i = 0; i < vendor.renumbered_count; i++) {
    if (vendor.renumbered[i].offered == offered) {
      *target_type = vendor.renumbered[i].target;
      return CKR_OK;
    }
  }
  /* A renumbered mechanism is offered under its new number only, as another vendor's module would. */
  for (size_t i = 0; i < vendor.renumbered_count; i++) {
    if (vendor.renumbered[i].target == offered) return CKR_MECHANISM_INVALID;
  }
  *target_type = offered;
  return CKR_OK;
}

/* The number the module offers a mechanism of the target under; 0 when it does not offer it. The inverse of target_mechanism. */
static int offered_mechanism(CK_MECHANISM_TYPE target_type, CK_MECHANISM_TYPE *offered) {
  *offered = target_type;
  int renumbered = 0;
  for (size_t i = 0; i < vendor.renumbered_count && !renumbered; i++) {
    if (vendor.renumbered[i].target == target_type) {
      *offered = vendor.renumbered[i].offered;
      renumbered = 1;
    }
  }
  /* The target's own mechanism of a number now given to another one is gone. */
  for (size_t i = 0; i < vendor.renumbered_count && !renumbered; i++) {
    if (vendor.renumbered[i].offered == target_type) return 0;
  }
  return !hidden(*offered);
}

/* Points *m at `copy`, the caller's mechanism under the target's number, unless the module does not offer it. */
static CK_RV to_target(CK_MECHANISM_PTR *m, CK_MECHANISM_PTR copy) {
  if (!*m) return CKR_OK; /* the target answers CKR_ARGUMENTS_BAD */
  *copy = **m;
  CK_RV rv = target_mechanism((*m)->mechanism, &copy->mechanism);
  if (rv == CKR_OK) *m = copy;
  return rv;
}

/* FORWARD for a session call that names a mechanism `m`: the target gets its number for it, or the call answers CKR_MECHANISM_INVALID. */
#define FORWARD_MECHANISM(name, params, args)                        \
  static CK_RV emu_##name params {                                   \
    CK_RV fault = arrive(FN_##name);                                 \
    if (fault != CKR_OK) return fault;                               \
    CK_RV rv = enter(SESSION);                                       \
    if (rv != CKR_OK) return rv;                                     \
    CK_MECHANISM copy;                                               \
    if ((rv = to_target(&m, &copy)) == CKR_OK) rv = target->name args; \
    leave();                                                         \
    return rv;                                                       \
  }

FORWARD(C_GetInfo, LIBRARY, (CK_INFO_PTR info), (info))
FORWARD(C_GetSlotList, SLOT, (CK_BBOOL present, CK_SLOT_ID_PTR list, LP count), (present, list, count))
FORWARD(C_GetSlotInfo, SLOT, (CK_SLOT_ID slot, CK_SLOT_INFO_PTR info), (slot, info))
FORWARD(C_InitToken, SLOT, (CK_SLOT_ID slot, CK_UTF8CHAR_PTR pin, UL len, CK_UTF8CHAR_PTR label), (slot, pin, len, label))
FORWARD(C_InitPIN, SESSION, (SH s, CK_UTF8CHAR_PTR pin, UL len), (s, pin, len))
FORWARD(C_SetPIN, SESSION, (SH s, CK_UTF8CHAR_PTR old, UL old_len, CK_UTF8CHAR_PTR pin, UL len), (s, old, old_len, pin, len))
FORWARD(C_GetSessionInfo, SESSION, (SH s, CK_SESSION_INFO_PTR info), (s, info))
FORWARD(C_GetOperationState, SESSION, (SH s, BP state, LP len), (s, state, len))
FORWARD(C_SetOperationState, SESSION, (SH s, BP state, UL len, OH enc, OH auth), (s, state, len, enc, auth))
FORWARD(C_Login, SESSION, (SH s, CK_USER_TYPE user, CK_UTF8CHAR_PTR pin, UL len), (s, user, pin, len))
FORWARD(C_Logout, SESSION, (SH s), (s))
FORWARD(C_CopyObject, SESSION, (SH s, OH o, AP t, UL n, CK_OBJECT_HANDLE_PTR copy), (s, o, t, n, copy))
FORWARD(C_DestroyObject, SESSION, (SH s, OH o), (s, o))
FORWARD(C_GetObjectSize, SESSION, (SH s, OH o, LP size), (s, o, size))
FORWARD(C_GetAttributeValue, SESSION, (SH s, OH o, AP t, UL n), (s, o, t, n))
FORWARD(C_SetAttributeValue, SESSION, (SH s, OH o, AP t, UL n), (s, o, t, n))
FORWARD(C_FindObjectsInit, SESSION, (SH s, AP t, UL n), (s, t, n))
FORWARD(C_FindObjects, SESSION, (SH s, CK_OBJECT_HANDLE_PTR found, UL max, LP count), (s, found, max, count))
FORWARD(C_FindObjectsFinal, SESSION, (SH s), (s))
FORWARD(C_EncryptUpdate, OPERATION, (SH s, BP in, UL in_len, BP out, LP out_len), (s, in, in_len, out, out_len))
FORWARD_MECHANISM(C_DecryptInit, (SH s, MP m, OH k), (s, m, k))
FORWARD(C_Decrypt, OPERATION, (SH s, BP in, UL in_len, BP out, LP out_len), (s, in, in_len, out, out_len))
FORWARD(C_DecryptUpdate, OPERATION, (SH s, BP in, UL in_len, BP out, LP out_len), (s, in, in_len, out, out_len))
FORWARD(C_DecryptFinal, OPERATION, (SH s, BP out, LP out_len), (s, out, out_len))
FORWARD_MECHANISM(C_DigestInit, (SH s, MP m), (s, m))
FORWARD(C_Digest, OPERATION, (SH s, BP in, UL in_len, BP out, LP out_len), (s, in, in_len, out, out_len))
FORWARD(C_DigestUpdate, OPERATION, (SH s, BP in, UL in_len), (s, in, in_len))
FORWARD(C_DigestKey, OPERATION, (SH s, OH k), (s, k))
FORWARD(C_DigestFinal, OPERATION, (SH s, BP out, LP out_len), (s, out, out_len))
FORWARD_MECHANISM(C_SignInit, (SH s, MP m, OH k), (s, m, k))
FORWARD(C_Sign, OPERATION, (SH s, BP in, UL in_len, BP sig, LP sig_len), (s, in, in_len, sig, sig_len))
FORWARD(C_SignUpdate, OPERATION, (SH s, BP in, UL in_len), (s, in, in_len))
FORWARD(C_SignFinal, OPERATION, (SH s, BP sig, LP sig_len), (s, sig, sig_len))
FORWARD_MECHANISM(C_SignRecoverInit, (SH s, MP m, OH k), (s, m, k))
FORWARD(C_SignRecover, OPERATION, (SH s, BP in, UL in_len, BP sig, LP sig_len), (s, in, in_len, sig, sig_len))
FORWARD_MECHANISM(C_VerifyInit, (SH s, MP m, OH k), (s, m, k))
FORWARD(C_Verify, OPERATION, (SH s, BP in, UL in_len, BP sig, UL sig_len), (s, in, in_len, sig, sig_len))
FORWARD(C_VerifyUpdate, OPERATION, (SH s, BP in, UL in_len), (s, in, in_len))
FORWARD(C_VerifyFinal, OPERATION, (SH s, BP sig, UL sig_len), (s, sig, sig_len))
FORWARD_MECHANISM(C_VerifyRecoverInit, (SH s, MP m, OH k), (s, m, k))
FORWARD(C_VerifyRecover, OPERATION, (SH s, BP sig, UL sig_len, BP out, LP out_len), (s, sig, sig_len, out, out_len))
FORWARD(C_DigestEncryptUpdate, OPERATION, (SH s, BP in, UL in_len, BP out, LP out_len), (s, in, in_len, out, out_len))
FORWARD(C_DecryptDigestUpdate, OPERATION, (SH s, BP in, UL in_len, BP out, LP out_len), (s, in, in_len, out, out_len))
FORWARD(C_SignEncryptUpdate, OPERATION, (SH s, BP in, UL in_len, BP out, LP out_len), (s, in, in_len, out, out_len))
FORWARD(C_DecryptVerifyUpdate, OPERATION, (SH s, BP in, UL in_len, BP out, LP out_len), (s, in, in_len, out, out_len))
FORWARD_MECHANISM(C_GenerateKey, (SH s, MP m, AP t, UL n, CK_OBJECT_HANDLE_PTR k), (s, m, t, n, k))
FORWARD_MECHANISM(C_GenerateKeyPair, (SH s, MP m, AP pt, UL pn, AP st, UL sn, CK_OBJECT_HANDLE_PTR pub, CK_OBJECT_HANDLE_PTR priv),
                  (s, m, pt, pn, st, sn, pub, priv))
FORWARD_MECHANISM(C_WrapKey, (SH s, MP m, OH wk, OH k, BP out, LP out_len), (s, m, wk, k, out, out_len))
FORWARD_MECHANISM(C_UnwrapKey, (SH s, MP m, OH uk, BP in, UL in_len, AP t, UL n, CK_OBJECT_HANDLE_PTR k), (s, m, uk, in, in_len, t, n, k))
FORWARD_MECHANISM(C_DeriveKey, (SH s, MP m, OH base, AP t, UL n, CK_OBJECT_HANDLE_PTR k), (s, m, base, t, n, k))
FORWARD(C_SeedRandom, SESSION, (SH s, BP seed, UL len), (s, seed, len))
FORWARD(C_GenerateRandom, SESSION, (SH s, BP out, UL len), (s, out, len))
FORWARD(C_GetFunctionStatus, SESSION, (SH s), (s))
FORWARD(C_CancelFunction, SESSION, (SH s), (s))

/* ---- calls with behaviour of their own ---------------------------------------------------- */

/*
 * A successful C_Initialize is a new connection: a drop requested before it is over, and the vendor
 * modes are the environment's now. A setting it cannot read fails it before the target is touched.
 */
static CK_RV emu_C_Initialize(CK_VOID_PTR args) {
  CK_RV rv = arrive(FN_C_Initialize);
  if (rv != CKR_OK) return rv;
  struct vendor modes;
  if (read_vendor(&modes) != 0) return CKR_GENERAL_ERROR;
  pthread_rwlock_wrlock(&connection);
  rv = target->C_Initialize(args); /* args pass through untouched: SoftHSM needs CKF_OS_LOCKING_OK */
  if (rv == CKR_OK) {
    joined_generation = atomic_load(&ctl->drop_generation);
    vendor = modes;
  }
  pthread_rwlock_unlock(&connection);
  return rv;
}

/* A finalized module has no connection left to lose: until C_Initialize the target answers CKR_CRYPTOKI_NOT_INITIALIZED. */
static CK_RV emu_C_Finalize(CK_VOID_PTR reserved) {
  CK_RV rv = arrive(FN_C_Finalize);
  if (rv != CKR_OK) return rv;
  pthread_rwlock_wrlock(&connection);
  rv = target->C_Finalize(reserved);
  if (rv == CKR_OK) {
    joined_generation = atomic_load(&ctl->drop_generation);
    pthread_mutex_lock(&sessions.lock);
    forget_sessions_locked();
    pthread_mutex_unlock(&sessions.lock);
  }
  pthread_rwlock_unlock(&connection);
  return rv;
}

static CK_RV remember_session_locked(CK_SESSION_HANDLE handle, CK_SLOT_ID slot, int rw) {
  if (sessions.count == sessions.capacity) {
    size_t capacity = sessions.capacity ? 2 * sessions.capacity : 16;
    struct session *list = realloc(sessions.list, capacity * sizeof *list);
    if (!list) return CKR_HOST_MEMORY;
    sessions.list = list;
    sessions.capacity = capacity;
  }
  sessions.list[sessions.count++] = (struct session){.handle = handle, .slot = slot, .rw = rw};
  uint64_t open = atomic_fetch_add(&ctl->open_sessions, 1) + 1;
  uint64_t peak = atomic_load(&ctl->peak_sessions);
  while (open > peak && !atomic_compare_exchange_weak(&ctl->peak_sessions, &peak, open)) {
  }
  return CKR_OK;
}

static void forget_session_locked(size_t i) {
  sessions.list[i] = sessions.list[--sessions.count];
  atomic_fetch_sub(&ctl->open_sessions, 1);
}

/* Opens are serialized under the session list's lock, so the cap is never overshot. */
static CK_RV emu_C_OpenSession(CK_SLOT_ID slot, CK_FLAGS flags, CK_VOID_PTR app, CK_NOTIFY notify, CK_SESSION_HANDLE_PTR session) {
  CK_RV rv = arrive(FN_C_OpenSession);
  if (rv != CKR_OK) return rv;
  if ((rv = enter(SLOT)) != CKR_OK) return rv;
  pthread_mutex_lock(&sessions.lock);
  uint64_t cap = atomic_load(&ctl->max_sessions);
  if (cap != 0 && sessions.count >= cap) {
    rv = CKR_SESSION_COUNT;
  } else {
    rv = target->C_OpenSession(slot, flags, app, notify, session);
    if (rv == CKR_OK && (rv = remember_session_locked(*session, slot, (flags & CKF_RW_SESSION) != 0)) != CKR_OK) {
      target->C_CloseSession(*session);
    }
  }
  pthread_mutex_unlock(&sessions.lock);
  leave();
  return rv;
}

static CK_RV emu_C_CloseSession(CK_SESSION_HANDLE session) {
  CK_RV rv = arrive(FN_C_CloseSession);
  if (rv != CKR_OK) return rv;
  if ((rv = enter(SESSION)) != CKR_OK) return rv;
  pthread_mutex_lock(&sessions.lock);
  rv = target->C_CloseSession(session);
  for (size_t i = 0; rv == CKR_OK && i < sessions.count; i++) {
    if (sessions.list[i].handle == session) {
      forget_session_locked(i);
      break;
    }
  }
  pthread_mutex_unlock(&sessions.lock);
  leave();
  return rv;
}

static CK_RV emu_C_CloseAllSessions(CK_SLOT_ID slot) {
  CK_RV rv = arrive(FN_C_CloseAllSessions);
  if (rv != CKR_OK) return rv;
  if ((rv = enter(SLOT)) != CKR_OK) return rv;
  pthread_mutex_lock(&sessions.lock);
  rv = target->C_CloseAllSessions(slot);
  for (size_t i = sessions.count; rv == CKR_OK && i-- > 0;) {
    if (sessions.list[i].slot == slot) forget_session_locked(i);
  }
  pthread_mutex_unlock(&sessions.lock);
  leave();
  return rv;
}

/* Reports the emulator's session counts, and its cap when one is set, in place of the target's. */
static CK_RV emu_C_GetTokenInfo(CK_SLOT_ID slot, CK_TOKEN_INFO_PTR info) {
  CK_RV rv = arrive(FN_C_GetTokenInfo);
  if (rv != CKR_OK) return rv;
  if ((rv = enter(SLOT)) != CKR_OK) return rv;
  rv = target->C_GetTokenInfo(slot, info);
  if (rv == CKR_OK) {
    pthread_mutex_lock(&sessions.lock);
    info->ulSessionCount = info->ulRwSessionCount = 0;
    for (size_t i = 0; i < sessions.count; i++) {
      if (sessions.list[i].slot != slot) continue;
      info->ulSessionCount++;
      if (sessions.list[i].rw) info->ulRwSessionCount++;
    }
    pthread_mutex_unlock(&sessions.lock);
    uint64_t cap = atomic_load(&ctl->max_sessions);
    if (cap != 0) info->ulMaxSessionCount = info->ulMaxRwSessionCount = cap;
  }
  leave();
  return rv;
}

/* ---- FIPS-mode behaviour ---------------------------------------------------------------------- */

/* The target's mechanism list as the module offers it: renumbered mechanisms under their new numbers, hidden ones left out. */
static CK_RV offered_mechanism_list(CK_SLOT_ID slot, CK_MECHANISM_TYPE_PTR list, CK_ULONG_PTR count) {
  if (!count) return CKR_ARGUMENTS_BAD;
  CK_ULONG n = 0;
  CK_RV rv = target->C_GetMechanismList(slot, NULL, &n);
  if (rv != CKR_OK) return rv;
  CK_MECHANISM_TYPE *all = calloc(n ? n : 1, sizeof *all);
  if (!all) return CKR_HOST_MEMORY;
  rv = target->C_GetMechanismList(slot, all, &n);
  CK_ULONG kept = 0;
  for (CK_ULONG i = 0; rv == CKR_OK && i < n; i++) {
    if (offered_mechanism(all[i], &all[kept])) kept++;
  }
  if (rv == CKR_OK && list && *count < kept) rv = CKR_BUFFER_TOO_SMALL;
  if (rv == CKR_OK && list) memcpy(list, all, kept * sizeof *all);
  if (rv == CKR_OK || rv == CKR_BUFFER_TOO_SMALL) *count = kept;
  free(all);
  return rv;
}

static CK_RV emu_C_GetMechanismList(CK_SLOT_ID slot, CK_MECHANISM_TYPE_PTR list, CK_ULONG_PTR count) {
  CK_RV rv = arrive(FN_C_GetMechanismList);
  if (rv != CKR_OK) return rv;
  if ((rv = enter(SLOT)) != CKR_OK) return rv;
  int changed = vendor.hidden_count != 0 || vendor.renumbered_count != 0;
  rv = changed ? offered_mechanism_list(slot, list, count) : target->C_GetMechanismList(slot, list, count);
  leave();
  return rv;
}

static CK_RV emu_C_GetMechanismInfo(CK_SLOT_ID slot, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO_PTR info) {
  CK_RV rv = arrive(FN_C_GetMechanismInfo);
  if (rv != CKR_OK) return rv;
  if ((rv = enter(SLOT)) != CKR_OK) return rv;
  if ((rv = target_mechanism(type, &type)) == CKR_OK) rv = target->C_GetMechanismInfo(slot, type, info);
  leave();
  return rv;
}

/* Key material in the clear: a secret or private key's CKA_VALUE. Certificates and data objects carry a CKA_VALUE too, and may. */
static int imports_key_value(CK_ATTRIBUTE_PTR t, CK_ULONG n) {
  int value = 0;
  CK_OBJECT_CLASS class = CKO_DATA; /* without a class the target refuses the template anyway */
  for (CK_ULONG i = 0; t && i < n; i++) {
    if (t[i].type == CKA_VALUE) value = 1;
    if (t[i].type == CKA_CLASS && t[i].pValue && t[i].ulValueLen == sizeof class) memcpy(&class, t[i].pValue, sizeof class);
  }
  return value && (class == CKO_SECRET_KEY || class == CKO_PRIVATE_KEY);
}

/* NSS in FIPS mode answers a plaintext key import with CKR_ATTRIBUTE_VALUE_INVALID: keys enter by C_UnwrapKey or are made inside. */
static CK_RV emu_C_CreateObject(SH s, AP t, UL n, CK_OBJECT_HANDLE_PTR o) {
  CK_RV rv = arrive(FN_C_CreateObject);
  if (rv != CKR_OK) return rv;
  if ((rv = enter(SESSION)) != CKR_OK) return rv;
  rv = vendor.refuse_value_import && imports_key_value(t, n) ? CKR_ATTRIBUTE_VALUE_INVALID : target->C_CreateObject(s, t, n, o);
  leave();
  return rv;
}

/* Luna mode: what the session's next C_Encrypt or C_EncryptFinal appends (iv NULL: nothing). */
static void set_appended_iv(CK_SESSION_HANDLE session, const CK_BYTE *iv) {
  pthread_mutex_lock(&sessions.lock);
  for (size_t i = 0; i < sessions.count; i++) {
    if (sessions.list[i].handle != session) continue;
    sessions.list[i].appends_iv = iv != NULL;
    if (iv) memcpy(sessions.list[i].appended_iv, iv, LUNA_IV_BYTES);
  }
  pthread_mutex_unlock(&sessions.lock);
}

static int appended_iv(CK_SESSION_HANDLE session, CK_BYTE iv[LUNA_IV_BYTES]) {
  int found = 0;
  pthread_mutex_lock(&sessions.lock);
  for (size_t i = 0; i < sessions.count && !found; i++) {
    if (sessions.list[i].handle != session || !sessions.list[i].appends_iv) continue;
    memcpy(iv, sessions.list[i].appended_iv, LUNA_IV_BYTES);
    found = 1;
  }
  pthread_mutex_unlock(&sessions.lock);
  return found;
}

/*
 * Every encryption reaches the target through here. While the module chooses GCM IVs, an AES-GCM
 * encryption started under an IV it did not choose is counted (caller_iv_encryptions): a tripwire
 * tests assert stays at 0, whichever path a call took to get here.
 */
static CK_RV forward_encrypt_init(SH s, CK_MECHANISM_PTR m, OH k, const CK_BYTE *module_iv) {
  CK_RV rv = target->C_EncryptInit(s, m, k);
  if (rv != CKR_OK || vendor.gcm_iv == IV_CALLER) return rv;
  if (m->mechanism == CKM_AES_GCM && !module_iv) atomic_fetch_add(&ctl->caller_iv_encryptions, 1);
  if (vendor.gcm_iv == IV_LUNA) set_appended_iv(s, module_iv);
  return rv;
}

static int all_zero(const CK_BYTE *bytes, CK_ULONG n) {
  CK_BYTE any = 0;
  for (CK_ULONG i = 0; i < n; i++) any |= bytes[i];
  return any == 0;
}

/* How many IV bytes the module makes for the IV the caller passed; 0 when the vendor refuses that IV. */
static CK_ULONG module_iv_bytes(const CK_GCM_PARAMS *given) {
  if (!given->pIv || !all_zero(given->pIv, given->ulIvLen)) return 0; /* a caller's own IV: never in FIPS mode */
  switch (vendor.gcm_iv) {
  case IV_CLOUDHSM:
    return given->ulIvLen == CLOUDHSM_IV_BYTES ? CLOUDHSM_IV_BYTES : 0;
  case IV_PROTECTSERVER: /* "the HSM will generate the same number of random bytes" as the zero IV has */
    return given->ulIvLen <= PROTECTSERVER_MAX_IV_BYTES ? given->ulIvLen : 0;
  case IV_LUNA: /* the IV goes out in the ciphertext, so the caller's buffer only has to be a plausible GCM IV */
    return given->ulIvLen == 12 || given->ulIvLen == LUNA_IV_BYTES ? LUNA_IV_BYTES : 0;
  case IV_CALLER:
    break;
  }
  return 0;
}

/*
 * AES-GCM C_EncryptInit while the module chooses IVs. The caller passes an all-zero IV; the module
 * draws its own from the target's RNG (as an HSM uses its own), encrypts under a copy of the
 * parameters holding it, and hands it back: CloudHSM and ProtectServer write it over the caller's
 * zero IV before C_EncryptInit returns (both vendors document it there, and it is the only call that
 * has the caller's CK_GCM_PARAMS), Luna appends it to the ciphertext.
 */
static CK_RV encrypt_init_module_iv(SH s, CK_MECHANISM_PTR m, OH k) {
  if (!m->pParameter || m->ulParameterLen != sizeof(CK_GCM_PARAMS)) return CKR_MECHANISM_PARAM_INVALID;
  CK_GCM_PARAMS *given = m->pParameter;
  CK_ULONG iv_bytes = module_iv_bytes(given);
  if (iv_bytes == 0) return CKR_MECHANISM_PARAM_INVALID;
  CK_BYTE iv[PROTECTSERVER_MAX_IV_BYTES];
  CK_RV rv = target->C_GenerateRandom(s, iv, iv_bytes);
  if (rv != CKR_OK) return rv;
  CK_GCM_PARAMS chosen = *given;
  chosen.pIv = iv;
  chosen.ulIvLen = iv_bytes;
  chosen.ulIvBits = iv_bytes * 8;
  CK_MECHANISM with_chosen = {m->mechanism, &chosen, sizeof chosen};
  rv = forward_encrypt_init(s, &with_chosen, k, iv);
  if (rv == CKR_OK && vendor.gcm_iv != IV_LUNA) memcpy(given->pIv, iv, iv_bytes);
  return rv;
}

static CK_RV emu_C_EncryptInit(SH s, MP m, OH k) {
  CK_RV rv = arrive(FN_C_EncryptInit);
  if (rv != CKR_OK) return rv;
  if ((rv = enter(SESSION)) != CKR_OK) return rv;
  CK_MECHANISM copy;
  if ((rv = to_target(&m, &copy)) == CKR_OK) {
    int module_iv = vendor.gcm_iv != IV_CALLER && m && m->mechanism == CKM_AES_GCM;
    rv = module_iv ? encrypt_init_module_iv(s, m, k) : forward_encrypt_init(s, m, k, NULL);
  }
  leave();
  return rv;
}

/*
 * Luna's C_Encrypt or C_EncryptFinal: the output is the target's with the 16-byte IV after the
 * tag, so the target writes into the caller's buffer less 16 bytes, and every size the caller is
 * told (a length query's, CKR_BUFFER_TOO_SMALL's, the output's) is 16 more than the target's.
 */
static CK_RV encrypt_appending_iv(SH s, BP in, UL in_len, BP out, LP out_len, const CK_BYTE iv[LUNA_IV_BYTES], int final) {
  if (!out_len) return CKR_ARGUMENTS_BAD;
  CK_ULONG room = out && *out_len > LUNA_IV_BYTES ? *out_len - LUNA_IV_BYTES : 0;
  CK_RV rv = final ? target->C_EncryptFinal(s, out, &room) : target->C_Encrypt(s, in, in_len, out, &room);
  if (rv == CKR_OK && out) memcpy(out + room, iv, LUNA_IV_BYTES);
  if (rv == CKR_OK || rv == CKR_BUFFER_TOO_SMALL) *out_len = room + LUNA_IV_BYTES;
  return rv;
}

static CK_RV emu_C_Encrypt(SH s, BP in, UL in_len, BP out, LP out_len) {
  CK_RV fault = arrive(FN_C_Encrypt);
  CK_RV rv = enter(OPERATION);
  if (rv != CKR_OK) return rv;
  CK_BYTE iv[LUNA_IV_BYTES];
  if (vendor.gcm_iv == IV_LUNA && appended_iv(s, iv)) {
    rv = encrypt_appending_iv(s, in, in_len, out, out_len, iv, 0);
  } else {
    rv = target->C_Encrypt(s, in, in_len, out, out_len);
  }
  leave();
  return fault != CKR_OK ? fault : rv;
}

/* Multi-part GCM on Luna: the IV follows the tag, which comes out of C_EncryptFinal; C_EncryptUpdate is forwarded as it is. */
static CK_RV emu_C_EncryptFinal(SH s, BP out, LP out_len) {
  CK_RV fault = arrive(FN_C_EncryptFinal);
  CK_RV rv = enter(OPERATION);
  if (rv != CKR_OK) return rv;
  CK_BYTE iv[LUNA_IV_BYTES];
  if (vendor.gcm_iv == IV_LUNA && appended_iv(s, iv)) {
    rv = encrypt_appending_iv(s, NULL, 0, out, out_len, iv, 1);
  } else {
    rv = target->C_EncryptFinal(s, out, out_len);
  }
  leave();
  return fault != CKR_OK ? fault : rv;
}

/* Not under `connection`: a wait that blocks would hold off drops and C_Finalize, and C_Finalize is what ends it. */
static CK_RV emu_C_WaitForSlotEvent(CK_FLAGS flags, CK_SLOT_ID_PTR slot, CK_VOID_PTR reserved) {
  CK_RV rv = arrive(FN_C_WaitForSlotEvent);
  if (rv != CKR_OK) return rv;
  if ((rv = enter(SLOT)) != CKR_OK) return rv;
  leave();
  return target->C_WaitForSlotEvent(flags, slot, reserved);
}

/* The list's own C_GetFunctionList is the exported one. */
#define emu_C_GetFunctionList C_GetFunctionList

static void build_function_list(void) {
  emulator_list.version = target->version;
#define X(name) emulator_list.name = emu_##name;
  FUNCTIONS(X)
#undef X
}

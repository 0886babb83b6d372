# Sourced by fake-adb before a `shell` command line: the device's commands as shell functions,
# answering like Android 8-14 do (the parts enrollment scripts read).

getprop() {
  case "$1" in
    ro.build.version.sdk) echo "$FAKE_SDK" ;;
    ro.build.version.release) echo "$FAKE_RELEASE" ;;
    ro.product.model) echo "$FAKE_MODEL" ;;
    ro.serialno) echo "$FAKE_SERIAL" ;;
    *) echo ;;
  esac
}

dumpsys() {
  case "$1" in
    account)
      echo 'User UserInfo{0:Owner:c13} :'
      echo "  Accounts: $FAKE_ACCOUNTS"
      i=0
      while [ "$i" -lt "$FAKE_ACCOUNTS" ]; do
        echo "    Account {name=user$i@example.com, type=com.google}"
        i=$((i + 1))
      done
      ;;
    device_policy)
      echo 'Current Device Policy Manager state:'
      if [ -f "$FAKE_DIR/owner" ]; then
        echo '  Device Owner: '
        echo "    admin=ComponentInfo{$(cat "$FAKE_DIR/owner")}"
        echo '    name='
        echo "    package=$(cut -d / -f 1 "$FAKE_DIR/owner")"
      fi
      echo '  Enabled Device Admins (User 0, provisioningState: 0):'
      ;;
  esac
}

pm() {
  case "$1 $2" in
    'list users')
      echo 'Users:'
      echo '	UserInfo{0:Owner:c13} running'
      ;;
    grant\ *)
      if [ ! -f "$FAKE_DIR/installed.sha256" ]; then
        echo "Exception occurred while executing 'grant':"
        echo "java.lang.IllegalArgumentException: Unknown package: $2"
        return 255
      fi
      echo "$3" >>"$FAKE_DIR/granted"
      ;;
  esac
}

dpm() {
  if [ "$1" != set-device-owner ]; then return 1; fi
  if [ "$FAKE_ACCOUNTS" -gt 0 ]; then
    echo "Exception occurred while executing 'set-device-owner':"
    echo 'java.lang.IllegalStateException: Not allowed to set the device owner because there are already some accounts on the device.'
    return 255
  fi
  if [ -f "$FAKE_DIR/owner" ]; then
    echo 'java.lang.IllegalStateException: Trying to set the device owner, but device owner is already set.'
    return 255
  fi
  printf '%s' "$2" >"$FAKE_DIR/owner"
  echo "Success: Device owner set to package ComponentInfo{$2}"
  echo "Active admin set to component {$2}"
}

am() {
  verb=$1
  shift
  action='' component=''
  [ "$verb" = broadcast ] && rm -f "$FAKE_DIR"/intent.*
  while [ $# -gt 0 ]; do
    case "$1" in
      -a) action=$2; shift 2 ;;
      -n) component=$2; shift 2 ;;
      --es) [ "$verb" = broadcast ] && printf '%s' "$3" >"$FAKE_DIR/intent.$2"; shift 3 ;;
      *) shift ;;
    esac
  done
  case "$verb" in
    broadcast)
      echo "Broadcasting: Intent { act=$action flg=0x400010 cmp=$component (has extras) }"
      if [ "$action" = com.nexmdm.agent.ENROLL ] && [ -f "$FAKE_DIR/installed.sha256" ] && [ -f "$FAKE_DIR/owner" ] &&
        [ "$component" = com.nexmdm.agent/.EnrollReceiver ]; then
        if [ -n "$FAKE_AGENT" ]; then
          $FAKE_AGENT "$(cat "$FAKE_DIR/intent.server_url")" "$(cat "$FAKE_DIR/intent.enrollment_token")" "$(cat "$FAKE_DIR/intent.device_serial")" \
            >>"$FAKE_DIR/agent.log" 2>&1 </dev/null &
        fi
        echo 'Broadcast completed: result=-1'
      else
        echo 'Broadcast completed: result=0'
      fi
      ;;
    start-foreground-service)
      echo "Starting service: Intent { cmp=$component }"
      ;;
  esac
}

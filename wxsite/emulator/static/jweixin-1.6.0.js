/*
 * wxsite WeChat emulator: a fake jweixin-1.6.0.js.
 *
 * Same API shapes as WeChat's JS-SDK (window.wx / window.jWeixin). wx.config really
 * checks the signature: the emulator compares it with its jsapi_tickets for
 * location.href without the fragment. Every call is recorded in window.__wxemu.events
 * and POSTed to <emulator>/_emu/events before the page's callbacks run.
 *
 * It builds its UI (image picker, toast, preview) with DOM APIs and element.style only,
 * so pages with a strict Content-Security-Policy (no inline styles) still work.
 * Vanilla ES2017, no build step. See docs/emulator.md.
 */
(function () {
  'use strict';

  if (window.wx && window.wx.__wxemu) return; // loaded twice: keep the first

  // -- where the emulator is ----------------------------------------------------------

  var SCRIPT_PATH = /\/(?:open\/js|_emu\/static)\/jweixin-1\.6\.0\.js(?:[?#].*)?$/;

  function findBase() {
    var script = document.currentScript;
    if (!script || !script.src) {
      var all = Array.from(document.getElementsByTagName('script'));
      script = all.reverse().find(function (s) { return /jweixin/.test(s.src); });
    }
    if (!script || !script.src) return location.origin;
    var src = new URL(script.src, location.href).href;
    return SCRIPT_PATH.test(src) ? src.replace(SCRIPT_PATH, '') : new URL(src).origin;
  }

  var BASE = findBase();
  var VOICE_LIMIT_MS = 60000;
  var Z_TOP = '2147483000';

  // Tests may set window.__wxemu.voiceLimitMs / voicePlayMs before the script loads.
  var emu = (window.__wxemu = Object.assign(window.__wxemu || {}, {
    base: BASE,
    ready: false,
    error: null,
    events: [],
    config: null,
    shareData: {},
    hiddenMenuItems: [],
    closed: false,
    recording: false,
    uploading: false,
  }));

  // -- small helpers --------------------------------------------------------------------

  function plain(value) {
    // Arguments as JSON would carry them: no functions, no DOM, no cycles.
    try {
      var text = JSON.stringify(value === undefined ? {} : value, function (key, v) {
        if (typeof v === 'function') return undefined;
        if (typeof Blob !== 'undefined' && v instanceof Blob) return '[Blob]';
        return v;
      });
      return text === undefined ? {} : JSON.parse(text);
    } catch (e) {
      return {};
    }
  }

  function summary(res) {
    // What a call answered, minus bulky fields (getLocalImgData's localData).
    var out = {};
    Object.keys(res).forEach(function (key) {
      if (key !== 'errMsg' && key !== 'localData') out[key] = res[key];
    });
    out = plain(out);
    if ('localData' in res) out.localDataLength = String(res.localData).length;
    return out;
  }

  function safeCall(fn, arg) {
    if (typeof fn !== 'function') return;
    try {
      fn(arg);
    } catch (e) {
      // A throwing page callback must not break the SDK (WeChat swallows them too).
      setTimeout(function () { throw e; });
    }
  }

  function post(path, data) {
    // text/plain keeps it a "simple" CORS request: no preflight round trip.
    return fetch(BASE + path, {
      method: 'POST',
      body: JSON.stringify(data),
      credentials: 'omit',
      mode: 'cors',
    });
  }

  function fail(reason) {
    var error = new Error(reason);
    error.wxReason = reason;
    return error;
  }

  function clampInt(value, low, high, fallback) {
    var n = parseInt(value, 10);
    if (isNaN(n)) return fallback;
    return Math.max(low, Math.min(high, n));
  }

  function record(api, args, ok, res) {
    var event = {
      api: api,
      args: plain(args),
      url: location.href,
      ok: ok,
      errMsg: res.errMsg,
      result: summary(res),
      ts: Date.now() / 1000,
    };
    emu.events.push(event);
    // Wait for the emulator to have it, so tests see it once the page reacts.
    return post('/_emu/events', event).then(
      function () {},
      function () {}
    );
  }

  function debugLog(api, res) {
    // WeChat alert()s in debug mode; the console is kinder to automated browsers.
    if (emu.debug && window.console) console.log('[wxemu] ' + api, res);
  }

  // -- wx.config / ready / error ----------------------------------------------------------

  var configState = 'none'; // none | pending | ready | error
  var configSeq = 0;
  var appId = null;
  var jsApiList = [];
  var openTagList = [];
  var readyFns = [];
  var errorFns = [];
  var queued = [];

  function flushQueue() {
    var calls = queued;
    queued = [];
    calls.forEach(function (run) { run(); });
  }

  function config(options) {
    options = options || {};
    var seq = ++configSeq;
    configState = 'pending';
    emu.ready = false;
    emu.error = null;
    emu.debug = !!options.debug;
    emu.config = plain(options);
    appId = options.appId || null;
    jsApiList = Array.isArray(options.jsApiList) ? options.jsApiList.slice() : [];
    // Granted in wx.config, not signed: WeChat's signature covers ticket, nonce, time, url.
    openTagList = Array.isArray(options.openTagList) ? options.openTagList.slice() : [];
    var url = location.href.split('#')[0];
    post('/_emu/jssdk/verify', {
      appId: appId,
      timestamp: String(options.timestamp),
      nonceStr: String(options.nonceStr),
      signature: String(options.signature),
      url: url,
      jsApiList: jsApiList,
    })
      .then(function (response) { return response.json(); })
      .then(null, function () { return { ok: false, errMsg: 'config:fail' }; })
      .then(function (result) {
        if (seq !== configSeq) return null; // a later wx.config superseded this one
        var ok = !!(result && result.ok);
        var res = ok ? { errMsg: 'config:ok' } : { errMsg: (result && result.errMsg) || 'config:invalid signature' };
        return record('config', options, ok, res).then(function () {
          if (seq !== configSeq) return;
          debugLog('config', res);
          if (ok) {
            configState = 'ready';
            emu.ready = true;
            flushQueue();
            readyFns.slice().forEach(function (fn) { safeCall(fn); });
          } else {
            configState = 'error';
            emu.error = res;
            flushQueue();
            errorFns.slice().forEach(function (fn) { safeCall(fn, res); });
          }
          return openTags(ok, res);
        });
      });
  }

  // -- open tags (开放标签) ----------------------------------------------------------------

  var OPEN_TAGS = ['wx-open-launch-weapp', 'wx-open-launch-app', 'wx-open-subscribe', 'wx-open-audio'];

  function tagArgs(node) {
    var args = { tag: node.localName };
    ['username', 'path', 'appid', 'extinfo', 'template'].forEach(function (name) {
      if (node.hasAttribute(name)) args[name] = node.getAttribute(name);
    });
    return args;
  }

  // Like WeChat, render a granted tag from its <script type="text/wxtag-template"> in a
  // shadow root (isolated from the page's CSS), and fire WeixinOpenTagsError on document
  // for the tags wx.config did not grant (or all of them when wx.config failed).
  function openTags(configOk, configRes) {
    var nodes = Array.prototype.slice.call(document.querySelectorAll(OPEN_TAGS.join(',')));
    var refused = [];
    var done = nodes.map(function (node) {
      var args = tagArgs(node);
      if (!configOk || openTagList.indexOf(node.localName) < 0) {
        refused.push(node.localName);
        return record('openTag', args, false, {
          errMsg: configOk ? 'openTag:not in wx.config openTagList' : configRes.errMsg,
        });
      }
      renderTag(node, args);
      return record('openTag', args, true, { errMsg: 'openTag:ok' });
    });
    return Promise.all(done).then(function () {
      if (!refused.length) return;
      var errMsg = configOk
        ? 'openTag:not in wx.config openTagList: ' + refused.join(',')
        : 'openTag:' + configRes.errMsg;
      document.dispatchEvent(new CustomEvent('WeixinOpenTagsError', { detail: { errMsg: errMsg } }));
    });
  }

  function renderTag(node, args) {
    if (node.shadowRoot) return;
    var template = node.querySelector('script[type="text/wxtag-template"]');
    var root = node.attachShadow({ mode: 'open' });
    // Parsed inert (DOMParser runs nothing) and adopted without its scripts, CSP-safe.
    var parsed = new DOMParser().parseFromString(template ? template.textContent : '', 'text/html');
    Array.prototype.forEach.call(parsed.querySelectorAll('script'), remove);
    Array.prototype.slice.call(parsed.body.childNodes).forEach(function (child) {
      root.appendChild(document.adoptNode(child));
    });
    root.addEventListener('click', function () {
      record('openTag:launch', args, true, { errMsg: 'launch:ok' }).then(function () {
        showToast('打开小程序 ' + (args.username || ''));
        node.dispatchEvent(new CustomEvent('launch', { detail: {} }));
      });
    });
  }

  function ready(fn) {
    readyFns.push(fn);
    if (configState === 'ready') safeCall(fn);
  }

  function onError(fn) {
    errorFns.push(fn);
    if (configState === 'error') safeCall(fn, emu.error);
  }

  // -- calling convention ---------------------------------------------------------------

  // impl(args) returns (or resolves to) extra result fields, {__cancel: true} for a user
  // cancel, or {__listener: true} when success only fires later (old onMenuShare*).
  function finish(api, args, outcome, res) {
    return record(api, args, outcome === 'ok' || outcome === 'listen', res).then(function () {
      debugLog(api, res);
      if (outcome === 'listen') return;
      if (outcome === 'ok') safeCall(args.success, res);
      else if (outcome === 'cancel') safeCall(args.cancel, res);
      else safeCall(args.fail, res);
      safeCall(args.complete, res);
    });
  }

  function defineApi(name, impl, exempt) {
    return function (args) {
      args = args || {};
      function run() {
        if (configState !== 'ready' || (!exempt && jsApiList.indexOf(name) < 0)) {
          finish(name, args, 'fail', { errMsg: name + ':permission denied' });
          return;
        }
        var result;
        try {
          result = Promise.resolve(impl(args));
        } catch (e) {
          result = Promise.reject(e);
        }
        result.then(
          function (extra) {
            extra = extra || {};
            if (extra.__cancel) return finish(name, args, 'cancel', { errMsg: name + ':cancel' });
            var res = Object.assign({ errMsg: name + ':ok' }, extra);
            delete res.__listener;
            return finish(name, args, extra.__listener ? 'listen' : 'ok', res);
          },
          function (error) {
            var reason = (error && error.wxReason) || 'fail';
            return finish(name, args, 'fail', { errMsg: name + ':' + reason });
          }
        );
      }
      if (configState === 'ready' || configState === 'error') run();
      else queued.push(run); // before wx.config is verified: wait for it
    };
  }

  // -- on-page UI (DOM + element.style only: strict CSP) -----------------------------------

  function el(tag, styles, text) {
    var node = document.createElement(tag);
    Object.keys(styles || {}).forEach(function (key) { node.style[key] = styles[key]; });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function overlay(id) {
    var root = el('div', {
      position: 'fixed', left: '0', top: '0', right: '0', bottom: '0',
      background: 'rgba(0,0,0,0.6)', zIndex: Z_TOP, display: 'flex',
      flexDirection: 'column', justifyContent: 'flex-end',
      fontFamily: '-apple-system, "PingFang SC", "Microsoft YaHei", sans-serif',
    });
    root.id = id;
    (document.body || document.documentElement).appendChild(root);
    return root;
  }

  function remove(node) {
    if (node && node.parentNode) node.parentNode.removeChild(node);
  }

  function showToast(text) {
    var toast = el('div', {
      position: 'fixed', left: '50%', top: '40%', transform: 'translate(-50%, -50%)',
      minWidth: '120px', padding: '16px', borderRadius: '12px', textAlign: 'center',
      background: 'rgba(17,17,17,0.7)', color: '#fff', fontSize: '15px',
      zIndex: Z_TOP, pointerEvents: 'none',
    }, text);
    toast.id = 'wxemu-toast';
    (document.body || document.documentElement).appendChild(toast);
    return toast;
  }

  // -- local resources ------------------------------------------------------------------

  // localIds are not URLs a page can load (like WKWebView): use getLocalImgData.
  var locals = new Map();
  var localSeq = 0;
  emu.locals = locals;

  function storeLocal(item) {
    var id = 'wxlocalresource://emu' + ++localSeq;
    locals.set(id, item);
    return id;
  }

  function readDataUrl(blob) {
    return new Promise(function (resolve, reject) {
      var reader = new FileReader();
      reader.onload = function () { resolve(reader.result); };
      reader.onerror = function () { reject(fail('fail')); };
      reader.readAsDataURL(blob);
    });
  }

  // -- images ---------------------------------------------------------------------------

  function chooseImage(args) {
    var count = clampInt(args.count, 1, 9, 9);
    var sources = Array.isArray(args.sourceType) ? args.sourceType : ['album', 'camera'];
    return new Promise(function (resolve) {
      var root = overlay('wxemu-sheet');
      var sheet = el('div', {
        background: '#f7f7f7', borderRadius: '12px 12px 0 0', paddingBottom: '8px',
        textAlign: 'center', color: '#111', fontSize: '17px',
      });
      var title = el('div', { padding: '16px', color: '#888', fontSize: '14px' },
        '选择图片（最多 ' + count + ' 张） · wxemu chooseImage');
      var label = el('label', {
        display: 'block', padding: '16px', background: '#fff', cursor: 'pointer',
        borderTop: '1px solid #eee',
      }, sources.indexOf('album') >= 0 ? '从手机相册选择' : '拍摄');
      var input = document.createElement('input');
      input.type = 'file';
      input.id = 'wxemu-file';
      input.accept = 'image/*';
      input.multiple = true; // `count` is applied after picking, as the real picker caps
      if (sources.indexOf('album') < 0) input.setAttribute('capture', 'environment');
      input.style.display = 'block';
      input.style.margin = '8px auto 0';
      label.appendChild(input);
      var cancel = el('button', {
        display: 'block', width: '100%', marginTop: '8px', padding: '16px', border: '0',
        background: '#fff', fontSize: '17px', color: '#111', cursor: 'pointer',
      }, '取消');
      cancel.type = 'button';
      cancel.id = 'wxemu-cancel';
      sheet.appendChild(title);
      sheet.appendChild(label);
      sheet.appendChild(cancel);
      root.appendChild(sheet);
      input.addEventListener('change', function () {
        var files = Array.from(input.files || []).slice(0, count);
        remove(root);
        if (!files.length) return resolve({ __cancel: true });
        var localIds = files.map(function (file) {
          return storeLocal({ kind: 'image', blob: file, name: file.name });
        });
        resolve({ localIds: localIds });
      });
      cancel.addEventListener('click', function () {
        remove(root);
        resolve({ __cancel: true });
      });
    });
  }

  function previewImage(args) {
    var urls = Array.isArray(args.urls) ? args.urls : [];
    var current = args.current || urls[0];
    if (!current) throw fail('fail');
    var root = overlay('wxemu-preview');
    root.style.background = '#000';
    root.style.justifyContent = 'center';
    root.style.alignItems = 'center';
    var img = el('img', { maxWidth: '100%', maxHeight: '100%' });
    img.src = current;
    img.alt = '';
    root.appendChild(img);
    root.addEventListener('click', function () { remove(root); });
    return {};
  }

  function getLocalImgData(args) {
    var item = locals.get(args.localId);
    if (!item || item.kind !== 'image') throw fail('fail');
    return readDataUrl(item.blob).then(function (dataUrl) { return { localData: dataUrl }; });
  }

  // WeChat refuses a second upload while one is in flight, for images and voice alike.
  function upload(kind, args) {
    if (emu.uploading) throw fail('fail');
    var item = locals.get(args.localId);
    if (!item || item.kind !== kind) throw fail('fail');
    emu.uploading = true;
    var toast = args.isShowProgressTips === 0 ? null : showToast('正在上传…');
    var form = new FormData();
    form.append('kind', kind);
    if (appId) form.append('appId', appId);
    if (kind === 'image') form.append('file', item.blob, item.name || 'image');
    else form.append('duration', String(item.durationMs));
    function done() {
      emu.uploading = false;
      remove(toast);
    }
    return fetch(BASE + '/_emu/jssdk/upload', { method: 'POST', body: form, credentials: 'omit' })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(
        function (data) {
          done();
          if (!data || !data.serverId) throw fail('fail');
          return { serverId: data.serverId };
        },
        function () {
          done();
          throw fail('fail');
        }
      );
  }

  function fetchMedia(serverId) {
    if (!serverId) return Promise.reject(fail('fail'));
    return fetch(BASE + '/_emu/jssdk/media/' + encodeURIComponent(serverId), { credentials: 'omit' })
      .then(function (response) {
        var type = response.headers.get('Content-Type') || '';
        if (!response.ok || type.indexOf('json') >= 0) throw fail('fail');
        return response.blob();
      }, function () { throw fail('fail'); });
  }

  function downloadImage(args) {
    return fetchMedia(args.serverId).then(function (blob) {
      return { localId: storeLocal({ kind: 'image', blob: blob, name: 'image' }) };
    });
  }

  // -- voice ----------------------------------------------------------------------------

  var recording = null;
  var playing = null;
  var listeners = {};

  function fireListener(api, res) {
    var handler = listeners[api];
    return record(api, {}, true, res).then(function () {
      debugLog(api, res);
      if (!handler) return;
      safeCall(handler.success, res);
      safeCall(handler.complete, res);
    });
  }

  function listen(name) {
    // Registering is local; the handler fires when the event happens.
    return function (args) { listeners[name] = args || {}; };
  }

  function voiceLimit() {
    return typeof emu.voiceLimitMs === 'number' ? emu.voiceLimitMs : VOICE_LIMIT_MS;
  }

  function startRecord() {
    if (recording) throw fail('fail');
    var limit = voiceLimit();
    recording = {
      start: Date.now(),
      timer: setTimeout(function () {
        // WeChat stops at 60 s by itself and hands the recording to onVoiceRecordEnd.
        recording = null;
        emu.recording = false;
        var localId = storeLocal({ kind: 'voice', durationMs: Math.min(limit, VOICE_LIMIT_MS) });
        fireListener('onVoiceRecordEnd', { localId: localId, errMsg: 'onVoiceRecordEnd:ok' });
      }, limit),
    };
    emu.recording = true;
    return {};
  }

  function stopRecord() {
    if (!recording) throw fail('fail');
    clearTimeout(recording.timer);
    var duration = Math.min(Date.now() - recording.start, VOICE_LIMIT_MS);
    recording = null;
    emu.recording = false;
    return { localId: storeLocal({ kind: 'voice', durationMs: duration }) };
  }

  function playVoice(args) {
    var item = locals.get(args.localId);
    if (!item || item.kind !== 'voice') throw fail('fail');
    if (playing) clearTimeout(playing.timer);
    var delay = typeof emu.voicePlayMs === 'number' ? emu.voicePlayMs : Math.min(item.durationMs, 500);
    var localId = args.localId;
    playing = {
      localId: localId,
      timer: setTimeout(function () {
        playing = null;
        fireListener('onVoicePlayEnd', { localId: localId, errMsg: 'onVoicePlayEnd:ok' });
      }, delay),
    };
    return {};
  }

  function stopPlaying() {
    if (playing) clearTimeout(playing.timer);
    playing = null;
    return {};
  }

  function downloadVoice(args) {
    return fetchMedia(args.serverId).then(function (blob) {
      // AMR mode 7: 6-byte header, then 32 bytes per 20 ms frame.
      var duration = Math.max(0, Math.round((blob.size - 6) / 32) * 20);
      return { localId: storeLocal({ kind: 'voice', durationMs: duration, blob: blob }) };
    });
  }

  // -- sharing --------------------------------------------------------------------------

  // The share link must be on the page's own domain (WeChat's JS-safe-domain rule).
  function checkLink(link) {
    var host = null;
    try {
      host = link ? new URL(link, location.href).hostname : null;
    } catch (e) {
      host = null;
    }
    if (host !== location.hostname) throw fail('fail invalid url domain');
  }

  function updateShare(kind) {
    return function (args) {
      checkLink(args.link);
      emu.shareData[kind] = plain(args);
      return {};
    };
  }

  var legacyShare = {};

  function legacyShareApi(kind) {
    // Deprecated onMenuShare*: success fires only when the user actually shares.
    return function (args) {
      checkLink(args.link);
      emu.shareData[kind] = plain(args);
      legacyShare[kind] = args;
      return { __listener: true };
    };
  }

  // Simulate the user sharing from the "…" menu: 'appMessage' or 'timeline'.
  emu.share = function (kind) {
    var args = legacyShare[kind];
    var api = kind === 'timeline' ? 'onMenuShareTimeline' : 'onMenuShareAppMessage';
    if (args) {
      var res = { errMsg: (kind === 'timeline' ? 'shareTimeline' : 'sendAppMessage') + ':ok' };
      record(api + '.share', args, true, res).then(function () {
        safeCall(args.success, res);
        safeCall(args.complete, res);
      });
    }
    return emu.shareData[kind] || null;
  };

  // -- window and menu ------------------------------------------------------------------

  function closeWindow() {
    emu.closed = true;
    var root = overlay('wxemu-closed');
    root.style.background = '#ededed';
    root.style.justifyContent = 'center';
    root.appendChild(el('div', { textAlign: 'center', color: '#888', fontSize: '17px' },
      '页面已关闭 · closed by wx.closeWindow (wxemu)'));
    return {};
  }

  // chooseWXPay: the "person" pays at once; the emulator checks paySign against the
  // merchant key, marks the order paid and notifies the merchant's notify_url.
  function chooseWXPay(args) {
    var body = {
      appId: appId, timeStamp: String(args.timestamp), nonceStr: args.nonceStr,
      package: args.package, signType: args.signType, paySign: args.paySign
    };
    return post('/_emu/pay/confirm', body).then(function (response) {
      return response.json();
    }).then(function (data) {
      if (!data.ok) throw fail('fail');
      return {};
    });
  }

  function menuItems(hide) {
    return function (args) {
      var list = Array.isArray(args.menuList) ? args.menuList : [];
      var hidden = emu.hiddenMenuItems.filter(function (item) { return list.indexOf(item) < 0; });
      emu.hiddenMenuItems = hide ? hidden.concat(list) : hidden;
      return {};
    };
  }

  function flag(name, value) {
    return function () {
      emu[name] = value;
      return {};
    };
  }

  // -- the wx object --------------------------------------------------------------------

  var impls = {
    checkJsApi: null, // defined below: needs the list of implemented APIs
    updateAppMessageShareData: updateShare('appMessage'),
    updateTimelineShareData: updateShare('timeline'),
    onMenuShareAppMessage: legacyShareApi('appMessage'),
    onMenuShareTimeline: legacyShareApi('timeline'),
    chooseImage: chooseImage,
    previewImage: previewImage,
    uploadImage: function (args) { return upload('image', args); },
    downloadImage: downloadImage,
    getLocalImgData: getLocalImgData,
    startRecord: startRecord,
    stopRecord: stopRecord,
    playVoice: playVoice,
    pauseVoice: stopPlaying,
    stopVoice: stopPlaying,
    uploadVoice: function (args) { return upload('voice', args); },
    downloadVoice: downloadVoice,
    closeWindow: closeWindow,
    chooseWXPay: chooseWXPay,
    hideMenuItems: menuItems(true),
    showMenuItems: menuItems(false),
    hideAllNonBaseMenuItem: flag('nonBaseMenuHidden', true),
    showAllNonBaseMenuItem: flag('nonBaseMenuHidden', false),
    hideOptionMenu: flag('optionMenuHidden', true),
    showOptionMenu: flag('optionMenuHidden', false),
    getNetworkType: function () { return { networkType: 'wifi' }; },
  };
  var LISTENERS = ['onVoiceRecordEnd', 'onVoicePlayEnd'];
  var implemented = Object.keys(impls).concat(LISTENERS);
  impls.checkJsApi = function (args) {
    var result = {};
    (Array.isArray(args.jsApiList) ? args.jsApiList : []).forEach(function (name) {
      result[name] = implemented.indexOf(name) >= 0;
    });
    return { checkResult: result };
  };

  var wx = { __wxemu: true, config: config, ready: ready, error: onError };
  Object.keys(impls).forEach(function (name) {
    wx[name] = defineApi(name, impls[name], name === 'checkJsApi');
  });
  LISTENERS.forEach(function (name) { wx[name] = listen(name); });

  window.wx = wx;
  window.jWeixin = wx;
})();

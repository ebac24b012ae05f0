// The #wechat_redirect fragment never reaches a server, so only the page can check it.
(function () {
  'use strict';
  function check() {
    var ok = location.hash === '#wechat_redirect';
    var error = document.getElementById('wxemu-hash-error');
    var form = document.getElementById('wxemu-authorize');
    if (error) error.hidden = ok;
    if (form) form.hidden = !ok;
  }
  check();
  window.addEventListener('hashchange', check);
})();

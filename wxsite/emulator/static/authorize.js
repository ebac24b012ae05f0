// The #wechat_redirect fragment never reaches a server, so only the page can check it.
(function () {
  'use strict';
  if (location.hash === '#wechat_redirect') return;
  var error = document.getElementById('wxemu-hash-error');
  var form = document.getElementById('wxemu-authorize');
  if (error) error.hidden = false;
  if (form) form.hidden = true;
})();

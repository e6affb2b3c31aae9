# frozen_string_literal: true

# A single-file Rails 6.1 app with ActionCable on Lunar: one channel, the real ActionCable
# JavaScript client, and a broadcast from a plain HTTP request. ActionCable hijacks the
# connection (rack.hijack) and runs its own nio4r event loop on the IO.
#
#   lunar --threaded -e production examples/actioncable/config.ru
#   open http://localhost:9292/ in two windows; or: curl -d text=hi localhost:9292/broadcast
require "rails"
require "action_controller/railtie"
require "action_cable/engine"

ACTION_CABLE_JS = "/usr/share/nodejs/@rails/actioncable/app/assets/javascripts/action_cable.js" # Debian's ruby-actioncable

# The whole Rails app in one file: ActionCable mounted at /cable, one page at /.
class CableApp < Rails::Application
  config.root = __dir__
  config.eager_load = false
  config.secret_key_base = "lunar-example-not-a-secret-" * 3
  config.hosts.clear
  config.logger = Logger.new($stdout, level: :warn)
  config.action_cable.cable = { "adapter" => "async" } # in-process pub/sub
  config.action_cable.disable_request_forgery_protection = true
  config.action_cable.mount_path = "/cable"
  routes.append do
    get "/" => "pages#index"
    get "/action_cable.js" => "pages#client"
    post "/broadcast" => "pages#broadcast"
  end
end

module ApplicationCable
  class Connection < ActionCable::Connection::Base; end
  class Channel < ActionCable::Channel::Base; end
end

# Every subscriber streams "chat"; what one says reaches all.
class ChatChannel < ApplicationCable::Channel
  def subscribed
    stream_from "chat"
  end

  def speak(data)
    ActionCable.server.broadcast("chat", { "text" => "said: #{data['text']}" })
  end
end

# The page with the real ActionCable JavaScript client.
class PagesController < ActionController::Base
  PAGE = <<~HTML
    <!doctype html>
    <html><head><meta charset="utf-8"><title>ActionCable on Lunar</title>
    <script src="/action_cable.js"></script></head>
    <body>
      <p id="state">connecting</p>
      <input id="msg" value="hi"> <button id="send">send</button>
      <ul id="messages"></ul>
      <script>
        const chat = ActionCable.createConsumer("/cable").subscriptions.create("ChatChannel", {
          connected() { document.getElementById("state").textContent = "connected"; },
          received(data) {
            const item = document.createElement("li");
            item.textContent = data.text;
            document.getElementById("messages").appendChild(item);
          }
        });
        document.getElementById("send").onclick = () => chat.perform("speak", { text: document.getElementById("msg").value });
      </script>
    </body></html>
  HTML

  def index
    render html: PAGE.html_safe
  end

  def client
    send_file ACTION_CABLE_JS, type: "application/javascript", disposition: "inline"
  end

  def broadcast
    ActionCable.server.broadcast("chat", { "text" => params[:text].to_s })
    head :no_content
  end
end

CableApp.initialize!
run CableApp

@echo off
rem Wazuh active-response program "cordon-ar" for Windows agents.
rem <executable> on Windows takes a file name in active-response\bin only, so this
rem wrapper starts cordon.exe; wazuh-execd speaks its stdin/stdout protocol with it.
rem Install as C:\Program Files (x86)\ossec-agent\active-response\bin\cordon-ar.cmd
rem and restart the Wazuh agent (execd remembers "command not present" until then).
rem Without a --server in the message, an isolation keeps the managers of the agent's
rem ossec.conf (<client><server>) reachable; with none it is refused.
"%ProgramFiles%\Cordon\cordon.exe" wazuh-ar --log "%~dp0..\active-responses.log" --ossec-conf "%~dp0..\..\ossec.conf" %*
